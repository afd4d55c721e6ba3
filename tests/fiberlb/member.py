"""A test member for fiberlb: an HTTP/1.1 server (keep-alive) answering every GET with JSON
naming itself and what it saw (Host, path, X-Forwarded-For, Cookie, the PROXY v2 source).
  member.py PORT NAME [--proxy-v2] [--fail]   (PORT 0: any free port, printed as "ready PORT")
With --proxy-v2 every connection must start with a PROXY protocol v2 header (as HAProxy's
send-proxy-v2 and check-send-proxy write it); a connection without one is closed. With --fail, paths under /fail answer 500."""
import http.server
import json
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def read_proxy_v2(rfile):
    head = rfile.read(16)
    if len(head) != 16 or head[:12] != SIG:
        return None
    ver_cmd, fam, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
    body = rfile.read(length)
    if ver_cmd >> 4 != 2:
        return None
    if ver_cmd & 0xF == 0:
        return "LOCAL"  # a health check's connection
    if fam >> 4 == 1:  # AF_INET
        return socket.inet_ntop(socket.AF_INET, body[0:4])
    if fam >> 4 == 2:
        return socket.inet_ntop(socket.AF_INET6, body[0:16])
    return "?"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = "?"
    proxy_v2 = False
    fail = False

    def setup(self):
        super().setup()
        self.proxy_src = ""
        if self.proxy_v2:
            src = read_proxy_v2(self.rfile)
            if src is None:
                self.close_connection = True
                self.rfile = open("/dev/null", "rb")  # nothing more is read from this client
                return
            self.proxy_src = src

    def do_GET(self):
        body = json.dumps({
            "member": self.name,
            "host": self.headers.get("Host", ""),
            "path": self.path,
            "xff": self.headers.get("X-Forwarded-For", ""),
            "cookie": self.headers.get("Cookie", ""),
            "proxy_src": self.proxy_src,
        }).encode()
        self.send_response(500 if self.fail and self.path.startswith("/fail") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # health checks close with a reset after reading the answer


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    Handler.name = name
    Handler.proxy_v2 = "--proxy-v2" in sys.argv
    Handler.fail = "--fail" in sys.argv
    server = Server(("127.0.0.1", port), Handler)
    print("ready %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
