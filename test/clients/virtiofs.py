# A guest's virtio-fs driver, in user space: what a guest's kernel does with its shared folder, done over
# virtiofsd's vhost-user socket by this process instead of by QEMU and a guest. The proofs use it where their
# guests are boot sectors, which never mount a folder: it shares its memory with virtiofsd (a memfd, as QEMU's
# memory-backend-memfd does), sets up the request queue as a guest's driver would, and sends FUSE requests on it.
# Run it in the guest's QEMU context and as the guest's user, and virtiofsd sees what it sees from QEMU.
#
#   python3 virtiofs.py SOCKET OP...
#     read:NAME      look NAME up in the folder, open it and read it
#     mkdir:NAME     make a directory NAME in the folder
#     outside:NAME   look ".." up from the folder's root, then NAME from there (a sibling of the folder)
#
# One line each: "OP:ARG ok TEXT" or "OP:ARG error ERRNO". Speaks vhost-user (QEMU's docs/interop/vhost-user.rst),
# the split virtqueue of virtio 1.1 and FUSE 7.31 (linux/fuse.h), without the optional features of any of them.
import mmap
import os
import select
import socket
import struct
import sys
import time

MEM_SIZE = 4 << 20
# Where the memory is in the "guest's" physical address space and in this process's (as QEMU tells virtiofsd both).
GPA, VA = 0x100000, 0x7F0000000000
QUEUE_SIZE = 16
REQUEST_QUEUE = 1  # queue 0 is virtio-fs's high-priority queue, which this client never uses
VERSION_1 = 1 << 32

# vhost-user requests
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL = 8, 9, 10, 12, 13
# FUSE opcodes
LOOKUP, MKDIR, OPEN, READ, INIT = 1, 9, 14, 15, 26
ROOT = 1


class Client:
    def __init__(self, path):
        self.memfd = os.memfd_create('virtiofs-client', 0)
        os.ftruncate(self.memfd, MEM_SIZE)
        self.mem = mmap.mmap(self.memfd, MEM_SIZE)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.unique = 0
        self.posted = 0
        self.used = 0

    def send(self, request, payload=b'', fds=()):
        message = struct.pack('<III', request, 1, len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [message], list(fds))
        else:
            self.sock.sendall(message)

    def features(self):
        self.send(GET_FEATURES)
        _, _, size = struct.unpack('<III', self.sock.recv(12, socket.MSG_WAITALL))
        return struct.unpack('<Q', self.sock.recv(size, socket.MSG_WAITALL))[0]

    def start(self):
        if not self.features() & VERSION_1:
            raise SystemExit('virtiofsd does not offer VIRTIO_F_VERSION_1')
        self.send(SET_OWNER)
        self.send(SET_FEATURES, struct.pack('<Q', VERSION_1))
        self.send(SET_MEM_TABLE, struct.pack('<IIQQQQ', 1, 0, GPA, MEM_SIZE, VA, 0), [self.memfd])
        self.kick = {}
        self.call = {}
        for q in (0, REQUEST_QUEUE):
            base = q * 0x10000  # each queue's descriptor table, then its available ring, then its used ring
            self.send(SET_VRING_NUM, struct.pack('<II', q, QUEUE_SIZE))
            self.send(SET_VRING_ADDR, struct.pack('<IIQQQQ', q, 0, VA + base, VA + base + 0x2000, VA + base + 0x1000, 0))
            self.send(SET_VRING_BASE, struct.pack('<II', q, 0))
            self.call[q] = os.eventfd(0, os.EFD_NONBLOCK)
            self.kick[q] = os.eventfd(0, os.EFD_NONBLOCK)
            self.send(SET_VRING_CALL, struct.pack('<Q', q), [self.call[q]])
            self.send(SET_VRING_KICK, struct.pack('<Q', q), [self.kick[q]])
        # None of the requests above is answered, and virtiofsd starts a queue only as it handles SET_VRING_KICK: it
        # watches the kick before it marks the queue ready, and a kick it reads in between stops the queue's worker
        # for good. A guest never kicks that early; this driver could. virtiofsd handles requests in order, so its
        # answer to one more GET_FEATURES says the queues are started.
        self.features()

    def fuse(self, opcode, node, args, reply_size):
        """One request on the request queue: a chain of a buffer virtiofsd reads and one it writes."""
        self.unique += 1
        base = REQUEST_QUEUE * 0x10000
        request = struct.pack('<IIQQIIIHH', 40 + len(args), opcode, self.unique, node, 0, 0, 0, 0, 0) + args
        inbuf, outbuf = 0x40000, 0x80000
        self.mem[inbuf:inbuf + len(request)] = request
        self.mem[outbuf:outbuf + 16 + reply_size] = bytes(16 + reply_size)
        self.mem[base:base + 32] = struct.pack('<QIHHQIHH', GPA + inbuf, len(request), 1, 1, GPA + outbuf, 16 + reply_size, 2, 0)
        avail = base + 0x1000
        slot = avail + 4 + 2 * (self.posted % QUEUE_SIZE)
        self.mem[slot:slot + 2] = struct.pack('<H', 0)
        self.posted += 1
        self.mem[avail + 2:avail + 4] = struct.pack('<H', self.posted & 0xFFFF)
        os.eventfd_write(self.kick[REQUEST_QUEUE], 1)
        used = base + 0x2000
        deadline = time.monotonic() + 60
        while struct.unpack('<H', self.mem[used + 2:used + 4])[0] == self.used:
            if time.monotonic() > deadline:
                raise SystemExit(f'virtiofsd did not answer FUSE request {opcode} in 60 s')
            # virtiofsd signals the call eventfd when it has used a buffer; reading it resets it.
            if select.select([self.call[REQUEST_QUEUE]], [], [], 1)[0]:
                os.eventfd_read(self.call[REQUEST_QUEUE])
        self.used = (self.used + 1) & 0xFFFF
        length, error, _ = struct.unpack('<IiQ', self.mem[outbuf:outbuf + 16])
        return -error, bytes(self.mem[outbuf + 16:outbuf + length])

    def lookup(self, node, name):
        error, out = self.fuse(LOOKUP, node, name.encode() + b'\0', 128)
        return error, (struct.unpack('<Q', out[:8])[0] if not error else None)


def main():
    client = Client(sys.argv[1])
    client.start()
    error, _ = client.fuse(INIT, 0, struct.pack('<IIII', 7, 31, 0, 0), 256)
    if error:
        raise SystemExit(f'FUSE_INIT failed: error {error}')
    for op in sys.argv[2:]:
        kind, _, name = op.partition(':')
        if kind == 'read':
            error, node = client.lookup(ROOT, name)
            if not error:
                error, out = client.fuse(OPEN, node, struct.pack('<II', os.O_RDONLY, 0), 16)
            if not error:
                handle = struct.unpack('<Q', out[:8])[0]
                error, data = client.fuse(READ, node, struct.pack('<QQIIQII', handle, 0, 4096, 0, 0, 0, 0), 4096)
            text = data.decode(errors='replace').strip() if not error else ''
        elif kind == 'mkdir':
            error, _ = client.fuse(MKDIR, ROOT, struct.pack('<II', 0o755, 0) + name.encode() + b'\0', 128)
            text = ''
        elif kind == 'outside':
            error, parent = client.lookup(ROOT, '..')
            if not error:
                error, _ = client.lookup(parent, name)
            text = ''
        else:
            raise SystemExit(f'unknown operation {op}')
        print(f'{op} error {error}' if error else f'{op} ok {text}'.rstrip(), flush=True)


main()
