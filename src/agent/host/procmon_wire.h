// What the agent (host/spawn.cc) and photon-procmon (host/procmon.cc) say to each other.
//
// The agent starts photon-procmon with two descriptors: kReportFd (a pipe, procmon writes
// Reports) and kGateFd (a socket: the agent writes one encoded Spec, later one 'g' for the go).
// Header-only and free of anything but the standard library: photon-procmon links nothing
// else.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace photon::agent::procmon {

constexpr int kReportFd = 3;
constexpr int kGateFd = 4;

struct Report {
  pid_t pid;      // the workload's process (the namespace's init when confined)
  pid_t monitor;  // the monitor
  int exec_errno;
  int stage;  // a Stage
};

// Where a start failed; kOk when it did not.
enum Stage {
  kOk,
  kLogFile,
  kCgroup,
  kChdir,
  kExec,
  kFork,
  kPidNamespace,
  kMounts,
  kCredentials,
  kNetns,
  kAborted,  // the starter closed the gate without a go: nothing ran
  kSpec,     // the start request was cut short or malformed
};

struct Spec {
  std::string exe;  // as ResolveExecutable found it
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;  // "": the monitor's ("/")
  std::string log_path;
  std::string exit_path;
  std::vector<std::string> cgroup_procs;
  bool subreaper = false;
  bool confine = false;  // the fields below up to private_tmp apply only then
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string private_tmp;
  std::string netns;            // "": the agent's network namespace
  bool drop_net_admin = false;  // not confined, in a port namespace
};

constexpr uint32_t kMagic = 0x31434d50;        // "PMC1"
constexpr uint32_t kMaxSpecBytes = 64u << 20;  // argv + env are bounded well below this
constexpr uint32_t kMaxListItems = 1u << 20;

namespace wire_internal {

inline void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
inline void PutStr(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
inline void PutList(std::string* out, const std::vector<std::string>& l) {
  PutU32(out, static_cast<uint32_t>(l.size()));
  for (const auto& s : l) PutStr(out, s);
}

struct Reader {
  const std::string& in;
  size_t pos = 0;
  bool U32(uint32_t* v) {
    if (in.size() - pos < 4) return false;
    std::memcpy(v, in.data() + pos, 4);
    pos += 4;
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n;
    if (!U32(&n) || in.size() - pos < n) return false;
    s->assign(in, pos, n);
    pos += n;
    return true;
  }
  bool List(std::vector<std::string>* l) {
    uint32_t n;
    if (!U32(&n) || n > kMaxListItems) return false;
    l->resize(n);
    for (auto& s : *l) {
      if (!Str(&s)) return false;
    }
    return true;
  }
  bool Bool(bool* b) {
    uint32_t v;
    if (!U32(&v) || v > 1) return false;
    *b = v == 1;
    return true;
  }
};

}  // namespace wire_internal

// The message: its length (not counting itself), then the fields in declaration order.
inline std::string EncodeSpec(const Spec& s) {
  using namespace wire_internal;
  std::string body;
  PutU32(&body, kMagic);
  PutStr(&body, s.exe);
  PutList(&body, s.argv);
  PutList(&body, s.env);
  PutStr(&body, s.cwd);
  PutStr(&body, s.log_path);
  PutStr(&body, s.exit_path);
  PutList(&body, s.cgroup_procs);
  PutU32(&body, s.subreaper);
  PutU32(&body, s.confine);
  PutU32(&body, s.uid);
  PutU32(&body, s.gid);
  PutStr(&body, s.private_tmp);
  PutStr(&body, s.netns);
  PutU32(&body, s.drop_net_admin);
  std::string out;
  PutU32(&out, static_cast<uint32_t>(body.size()));
  return out + body;
}

// Decodes the body (without the length); false when anything is missing, extra or malformed.
inline bool DecodeSpec(const std::string& body, Spec* s) {
  wire_internal::Reader r{body};
  uint32_t magic;
  bool ok = r.U32(&magic) && magic == kMagic && r.Str(&s->exe) && r.List(&s->argv) &&
            r.List(&s->env) && r.Str(&s->cwd) && r.Str(&s->log_path) && r.Str(&s->exit_path) &&
            r.List(&s->cgroup_procs) && r.Bool(&s->subreaper) && r.Bool(&s->confine) &&
            r.U32(&s->uid) && r.U32(&s->gid) && r.Str(&s->private_tmp) && r.Str(&s->netns) &&
            r.Bool(&s->drop_net_admin);
  return ok && r.pos == body.size() && !s->exe.empty() && !s->argv.empty() &&
         !s->log_path.empty() && !s->exit_path.empty() && (!s->confine || !s->private_tmp.empty());
}

}  // namespace photon::agent::procmon
