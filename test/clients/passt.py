# A guest's network card, in user space: what a guest's kernel does on its user-mode network, done over passt's
# socket by this process instead of by QEMU and a guest. The proofs use it where their guests are boot sectors,
# which have no network stack: it connects to passt as QEMU's -netdev stream does, exchanges Ethernet frames with
# it in QEMU's framing (each frame after its length, 32 bits, network order), asks for an address by DHCP, and then
# makes the requests it is given with frames it builds itself. Run it as the guest's user (and under SELinux in
# the guest's QEMU context), and passt sees what it sees from QEMU.
#
#   python3 passt.py SOCKET REQUEST...
#     ping:ADDRESS                an ICMP echo request; "ping=ok" when the reply comes, "ping=timeout" when none
#                                 comes in 10 s
#     get:ADDRESS:PORT:PATH       an HTTP/1.0 GET over TCP; "get=STATUS | FIRST LINE OF THE BODY" when it is served
#     connect:NAME:ADDRESS:PORT   a TCP connection; "NAME=connected", "refused" (a reset) or "timeout" (no answer
#                                 in 10 s)
#
# First "dhcp=ADDRESS/PREFIX router=ADDRESS", then one line for each request. Exits 0 once DHCP gave an address,
# whatever the requests' results, which the proof judges; 1 when it did not. Speaks Ethernet II, ARP-free IPv4 (the
# router's hardware address is the one DHCP's answer came from), DHCP (RFC 2131), ICMP echo and the parts of TCP a
# client of one short request needs, without options beyond the MSS.

import random
import socket
import struct
import sys
import time

MAC = bytes.fromhex('525400a1b2c3')
BROADCAST = b'\xff' * 6
ETH_IP = 0x0800
TIMEOUT = 30.0
# A connection that must not be made waits less: the unit's egress filter drops the SYN passt sends for it.
CONNECT_TIMEOUT = 10.0
# So does a ping, which passt answers from its own echo socket or not at all.
PING_TIMEOUT = 10.0


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a):
    return socket.inet_aton(a)


class Card:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b''
        self.addr = b'\0' * 4
        self.gw_mac = BROADCAST

    def send(self, dst, ethertype, payload):
        frame = dst + MAC + struct.pack('!H', ethertype) + payload
        self.s.sendall(struct.pack('!I', len(frame)) + frame)

    def frame(self, deadline):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack('!I', self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise EOFError('passt closed the connection')
            self.buf += chunk

    def ipv4(self, proto, src, dst, payload):
        ident = random.getrandbits(16)
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
        hdr = hdr[:10] + struct.pack('!H', checksum(hdr)) + hdr[12:]
        return hdr + payload

    def send_ip(self, proto, dst, payload, eth_dst=None):
        self.send(eth_dst or self.gw_mac, ETH_IP, self.ipv4(proto, self.addr, dst, payload))

    def receive_ip(self, proto, deadline, match):
        """The next IPv4 packet of this protocol that match() accepts, as (source, header, payload), or None."""
        while True:
            f = self.frame(deadline)
            if f is None:
                return None
            if struct.unpack('!H', f[12:14])[0] != ETH_IP:
                continue
            ip = f[14:]
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack('!H', ip[2:4])[0]
            if ip[9] != proto:
                continue
            payload = ip[ihl:total]
            if match(f, ip[12:16], payload):
                return f, ip[12:16], payload


def dhcp(card):
    xid = random.getrandbits(32)

    def message(kind, extra=b''):
        # A request from no address yet (ciaddr and the rest zero), answers wanted by broadcast (the flag).
        zero = b'\0' * 4
        fields = (1, 1, 6, 0, xid, 0, 0x8000, zero, zero, zero, zero, MAC, b'', b'')
        bootp = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', *fields)
        options = b'\x63\x82\x53\x63' + bytes([53, 1, kind]) + extra + bytes([55, 3, 1, 3, 6, 255])
        udp = struct.pack('!HHHH', 68, 67, 8 + len(bootp + options), 0) + bootp + options
        card.send(BROADCAST, ETH_IP, card.ipv4(17, b'\0' * 4, b'\xff' * 4, udp))

    def reply(kind):
        def match(f, src, udp):
            if struct.unpack('!HH', udp[:4]) != (67, 68):
                return False
            bootp = udp[8:]
            return struct.unpack('!I', bootp[4:8])[0] == xid and options(bootp).get(53) == bytes([kind])

        r = card.receive_ip(17, time.monotonic() + TIMEOUT, match)
        if r is None:
            raise TimeoutError('no DHCP %s' % ('offer' if kind == 2 else 'acknowledgement'))
        return r[0], r[2][8:]

    def options(bootp):
        out, o = {}, bootp[240:]
        i = 0
        while i < len(o) and o[i] != 255:
            if o[i] == 0:
                i += 1
                continue
            out[o[i]] = o[i + 2 : i + 2 + o[i + 1]]
            i += 2 + o[i + 1]
        return out

    message(1)
    _, offer = reply(2)
    offered, server = offer[16:20], options(offer).get(54, b'')
    message(3, bytes([50, 4]) + offered + (bytes([54, 4]) + server if server else b''))
    frame, ack = reply(5)
    card.addr = ack[16:20]
    card.gw_mac = frame[6:12]
    opts = options(ack)
    prefix = bin(struct.unpack('!I', opts.get(1, b'\0' * 4))[0]).count('1')
    router = socket.inet_ntoa(opts[3][:4]) if 3 in opts else 'none'
    return '%s/%d router=%s' % (socket.inet_ntoa(card.addr), prefix, router)


def ping(card, dst):
    ident, seq = random.getrandbits(16), 1
    body = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + b'qemu-harden'
    body = body[:2] + struct.pack('!H', checksum(body)) + body[4:]
    card.send_ip(1, ip4(dst), body)

    def match(f, src, icmp):
        return src == ip4(dst) and icmp[0] == 0 and struct.unpack('!H', icmp[4:6])[0] == ident

    return 'ok' if card.receive_ip(1, time.monotonic() + PING_TIMEOUT, match) else 'timeout'


class Tcp:
    SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08

    def __init__(self, card, dst, port):
        self.card, self.dst, self.port = card, ip4(dst), port
        self.sport = random.randint(20000, 60000)
        self.seq = random.getrandbits(32)
        self.ack = 0

    def send(self, flags, data=b'', options=b''):
        off = (20 + len(options)) // 4
        hdr = struct.pack('!HHIIBBHHH', self.sport, self.port, self.seq, self.ack, off << 4, flags, 65535, 0, 0)
        hdr += options
        pseudo = self.card.addr + self.dst + struct.pack('!BBH', 0, 6, len(hdr) + len(data))
        c = checksum(pseudo + hdr + data)
        self.card.send_ip(6, self.dst, hdr[:16] + struct.pack('!H', c) + hdr[18:] + data)

    def segment(self, deadline):
        def match(f, src, tcp):
            return src == self.dst and struct.unpack('!HH', tcp[:4]) == (self.port, self.sport)

        r = self.card.receive_ip(6, deadline, match)
        if r is None:
            return None
        tcp = r[2]
        seq, ack = struct.unpack('!II', tcp[4:12])
        return seq, ack, tcp[13], tcp[(tcp[12] >> 4) * 4 :]

    def open(self, timeout=TIMEOUT):
        self.send(self.SYN, options=struct.pack('!BBH', 2, 4, 1460))
        s = self.segment(time.monotonic() + timeout)
        if s is None:
            return 'timeout'
        seq, ack, flags, _ = s
        if flags & self.RST:
            return 'refused'
        if flags & (self.SYN | self.ACK) != self.SYN | self.ACK:
            return 'unexpected flags %#x' % flags
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.ack = (seq + 1) & 0xFFFFFFFF
        self.send(self.ACK)
        return 'connected'

    def request(self, data):
        """Sends data, then reads until the server closes; the bytes it sent."""
        self.send(self.ACK | self.PSH, data)
        self.seq = (self.seq + len(data)) & 0xFFFFFFFF
        got = b''
        deadline = time.monotonic() + TIMEOUT
        while True:
            s = self.segment(deadline)
            if s is None:
                raise TimeoutError('the server did not finish its answer')
            seq, _, flags, payload = s
            if flags & self.RST:
                raise ConnectionResetError('reset by the server')
            if seq == self.ack and payload:
                got += payload
                self.ack = (self.ack + len(payload)) & 0xFFFFFFFF
            if flags & self.FIN and seq + len(payload) & 0xFFFFFFFF == self.ack:
                self.ack = (self.ack + 1) & 0xFFFFFFFF
                self.send(self.ACK | self.FIN)
                self.seq = (self.seq + 1) & 0xFFFFFFFF
                return got
            self.send(self.ACK)


def main():
    path, requests = sys.argv[1], sys.argv[2:]
    card = Card(path)
    try:
        print('dhcp=%s' % dhcp(card), flush=True)
    except (OSError, EOFError) as e:
        print('dhcp=failed: %s' % e, flush=True)
        return 1
    for r in requests:
        kind, _, rest = r.partition(':')
        try:
            if kind == 'ping':
                print('ping=%s' % ping(card, rest), flush=True)
            elif kind == 'get':
                dst, port, target = rest.split(':', 2)
                c = Tcp(card, dst, int(port))
                state = c.open()
                if state != 'connected':
                    print('get=%s' % state, flush=True)
                    continue
                answer = c.request(b'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' % (target.encode(), dst.encode()))
                head, _, body = answer.partition(b'\r\n\r\n')
                status = head.split(b'\r\n')[0].decode(errors='replace')
                print('get=%s | %s' % (status, body.decode(errors='replace').split('\n')[0]), flush=True)
            elif kind == 'connect':
                name, dst, port = rest.split(':')
                print('%s=%s' % (name, Tcp(card, dst, int(port)).open(CONNECT_TIMEOUT)), flush=True)
            else:
                print('%s=unknown request' % kind, flush=True)
        except (OSError, EOFError) as e:
            print('%s=failed: %s' % (kind, e), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
