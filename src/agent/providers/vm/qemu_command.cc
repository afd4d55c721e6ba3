// QEMU argv builder; see qemu_command.h.
#include "agent/providers/vm/qemu_command.h"

namespace photon::agent::vm {

namespace {
// QEMU option values end at a comma; a literal comma is written twice.
std::string Esc(const std::string& value) {
  std::string out;
  for (char ch : value) {
    out.push_back(ch);
    if (ch == ',') out.push_back(',');
  }
  return out;
}
}  // namespace

std::string HotplugPortId(int index) { return "hp" + std::to_string(index); }

std::vector<std::string> BuildQemuArgv(const QemuConfig& c) {
  const bool microvm = c.machine == "microvm";
  std::vector<std::string> a = {c.binary};
  auto add = [&a](std::initializer_list<std::string> items) {
    a.insert(a.end(), items.begin(), items.end());
  };
  add({"-name", Esc(c.name) + ",debug-threads=on"});
  // Only what we ask for: no default NIC, VGA, floppy, CD-ROM or user config file.
  add({"-nodefaults", "-no-user-config", "-display", "none"});
  if (microvm) {
    add({"-machine", "microvm,acpi=on,pcie=off,rtc=on,pit=off,pic=off"});
  } else {
    add({"-machine", "q35"});
    // How a guest tells which cloud it runs on: cloud-init's OpenStack datasource reads the
    // metadata service (169.254.1.2, OpenStack layout) only when DMI names an OpenStack-compatible
    // platform; the chassis asset tag says so (as other OpenStack-compatible clouds do) while the
    // system itself is named for what it is.
    add({"-smbios", "type=1,manufacturer=PhotonCloud,product=PhotonCloud Compute"});
    add({"-smbios", "type=3,manufacturer=PhotonCloud,asset=OpenStack Compute"});
  }
  if (c.accel == "kvm") {
    add({"-accel", "kvm", "-cpu", "host"});
  } else {
    add({"-accel", "tcg,tb-size=" + std::to_string(c.tcg_tb_size_mb)});
  }
  add({"-smp", std::to_string(c.vcpus), "-m", std::to_string(c.memory_mb)});
  if (!c.kernel.empty()) {
    add({"-kernel", c.kernel});
    if (!c.initrd.empty()) add({"-initrd", c.initrd});
    add({"-append", c.kernel_args});
  }
  if (!microvm) {
    // Spare root ports: q35 hot-plugs PCIe devices only below a port (ACPI hot-plug).
    int ports = c.hotplug_ports;
    for (const auto& d : c.disks) ports = std::max(ports, d.port + 1);
    for (int i = 0; i < ports; ++i) {
      add({"-device", "pcie-root-port,id=" + HotplugPortId(i) +
                          ",bus=pcie.0,chassis=" + std::to_string(i + 1)});
    }
  }
  for (const auto& d : c.disks) {
    std::string node = "drive-" + d.id;
    add({"-blockdev", "driver=file,node-name=" + node + "-file,filename=" + Esc(d.path) +
                          (d.read_only ? ",read-only=on" : "")});
    add({"-blockdev", "driver=" + d.format + ",node-name=" + node + ",file=" + node + "-file" +
                          (d.read_only ? ",read-only=on" : "")});
    std::string dev = (microvm ? "virtio-blk-device" : "virtio-blk-pci");
    dev += ",drive=" + node + ",id=dev-" + d.id;
    if (!microvm && d.port >= 0) dev += ",bus=" + HotplugPortId(d.port);
    add({"-device", dev});
  }
  if (c.network == "tap" && (c.tap_fd >= 0 || !c.tap_name.empty())) {
    add({"-netdev", c.tap_fd >= 0
                        ? "tap,id=net0,fd=" + std::to_string(c.tap_fd)
                        : "tap,id=net0,ifname=" + c.tap_name + ",script=no,downscript=no"});
    add({"-device", std::string(microvm ? "virtio-net-device" : "virtio-net-pci") + ",netdev=net0" +
                        (c.mac.empty() ? "" : ",mac=" + c.mac)});
  } else if (c.network == "user") {
    add({"-netdev", "user,id=net0"});
    add({"-device", std::string(microvm ? "virtio-net-device" : "virtio-net-pci") + ",netdev=net0" +
                        (c.mac.empty() ? "" : ",mac=" + c.mac)});
  } else {
    add({"-nic", "none"});
  }
  add({"-chardev", "socket,id=qmp,path=" + Esc(c.qmp_socket) + ",server=on,wait=off"});
  add({"-mon", "chardev=qmp,mode=control"});
  // Appending keeps the console across stop/start; readiness is looked for past an offset.
  // With a socket, QEMU logs what the guest writes whether or not a console is attached
  // (unattached, the write fails and is logged whole); an attached console that does not
  // read holds the guest's serial output back instead of losing it.
  if (c.serial_socket.empty()) {
    add({"-chardev", "file,id=serial0,path=" + Esc(c.console_log) + ",append=on"});
  } else {
    add({"-chardev", "socket,id=serial0,path=" + Esc(c.serial_socket) +
                         ",server=on,wait=off,logfile=" + Esc(c.console_log) + ",logappend=on"});
  }
  add({"-serial", "chardev:serial0"});
  add({"-pidfile", c.pidfile});
  if (c.daemonize) add({"-daemonize"});
  return a;
}

}  // namespace photon::agent::vm
