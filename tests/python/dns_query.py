# A DNS A query for NAME to 127.0.0.1:PORT over UDP; prints the first answer, exits 1 without one.
# (A real resolver check without dnsutils: the services tests ask dnsmasq with it.)
import socket, struct, sys
name, port = sys.argv[1], int(sys.argv[2])
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, ("127.0.0.1", port)); r, _ = s.recvfrom(512)
an = struct.unpack(">H", r[6:8])[0]
if an < 1: sys.exit(1)
print(socket.inet_ntoa(r[-4:]))
