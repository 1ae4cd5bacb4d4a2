"""Titanic server peer (the role of the Guide's titanic, RFC 9/TSP on RFC 7/MDP 0.1), for interop
tests.

Three MDP workers, one thread each, each on its own DEALER socket connected to --broker, serve
the TSP services; the main thread is the dispatcher. Storage is the directory --dir: the files
<UUID>.req ([service][body...]), <UUID>.rep (the reply body) and the queue file "queue" (records
of 33 bytes, status character "-" pending or "+" done then the UUID, each followed by "\\n"). A
message file holds, per frame, a 4-byte big-endian length and the bytes; writes are not flushed
(as the reference).

* titanic.request [service][body...]: makes the directory, draws a UUID (uuid4, 32 hex digits,
  UPPERCASE as the C reference, or lowercase as the Python one with --uuid-case lower), writes
  the whole body to <UUID>.req, hands the UUID to the dispatcher and answers ["200"][UUID]. A
  body of fewer than 2 frames is stored all the same (the reference does not check it).
* titanic.reply [UUID]: only the first frame counts. <UUID>.rep exists -> ["200"][reply...];
  else <UUID>.req exists -> ["300"]; else ["400"]. The UUID is looked up as given: file names
  are case-sensitive, so a UUID in the other case is unknown (400), as in the reference.
* titanic.close [UUID]: deletes <UUID>.req and <UUID>.rep (missing ones ignored) and answers
  ["200"], also for unknown UUIDs; the queue file is not touched.
* A storage failure (an OSError) answers ["500"] where the reference would crash. A first frame
  that is not 32 hex digits is unknown (400; close: 200) and no file name is built from it.

Dispatcher: waits up to --idle-ms for a new UUID (appended to the queue file as "-UUID\\n"), then
makes one pass over the whole queue file in order: for each "-" record whose <UUID>.req still
exists, a NEW MDP client (REQ, --timeout, one send) asks "mmi.service" [service]; on "200" it
sends the stored body to the service and, when a reply comes, writes it to <UUID>.rep. The record
becomes "+" in place on success and when the .req is gone (closed); anything else leaves it "-"
for the next pass (no limit, no back-off). Services slower than --timeout are thus sent the
request again on every pass, as in the reference.

The workers follow the reference worker API: poll timeout --heartbeat-interval, HEARTBEAT when
due after each poll, liveness counted in silent polls, a new socket (READY) after --reconnect on
heartbeat failure and at once on DISCONNECT. On SIGTERM/SIGINT the threads stop within one
interval and every socket is closed with linger 0.
"""

import os
import queue
import re
import struct
import threading
import uuid as uuidlib

import zmq

from _common import make_logger, now_ms, parser, run, show_frames, show_identity, sleep_ms
from mdclient import AssertionAbort, MajordomoClient

log = make_logger("titanic")

MDPW01 = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = (bytes([n]) for n in range(1, 6))
HEX32 = re.compile(rb"^[0-9A-Fa-f]{32}$")


# -- storage ------------------------------------------------------------------------------------

def save_frames(path, frames):
    with open(path, "wb") as f:
        for frame in frames:
            f.write(struct.pack(">I", len(frame)))
            f.write(frame)


def load_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    frames, at = [], 0
    while at + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, at)
        frames.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return frames


class Storage:
    def __init__(self, directory):
        self.dir = directory

    def path(self, uuid, ext):
        return os.path.join(self.dir, "%s.%s" % (uuid.decode("ascii"), ext))

    def queue_path(self):
        return os.path.join(self.dir, "queue")


# -- the three TSP services ---------------------------------------------------------------------

def make_services(storage, args, pending):
    def titanic_request(body):
        os.makedirs(storage.dir, exist_ok=True)
        uuid = uuidlib.uuid4().hex
        uuid = (uuid.upper() if args.uuid_case == "upper" else uuid).encode("ascii")
        save_frames(storage.path(uuid, "req"), body)
        pending.put(uuid)
        log("request %s stored (%s)" % (uuid.decode(), show_frames(body)))
        return [b"200", uuid]

    def titanic_reply(body):
        uuid = body[0] if body else b""
        if not HEX32.match(uuid):
            return [b"400"]
        if os.path.exists(storage.path(uuid, "rep")):
            return [b"200"] + load_frames(storage.path(uuid, "rep"))
        if os.path.exists(storage.path(uuid, "req")):
            return [b"300"]
        return [b"400"]

    def titanic_close(body):
        uuid = body[0] if body else b""
        if HEX32.match(uuid):
            for ext in ("req", "rep"):
                try:
                    os.remove(storage.path(uuid, ext))
                except FileNotFoundError:
                    pass
            log("request %s closed" % uuid.decode())
        return [b"200"]

    return {b"titanic.request": titanic_request, b"titanic.reply": titanic_reply,
            b"titanic.close": titanic_close}


class ServiceWorker(threading.Thread):
    """One MDP worker (the reference worker API) serving one TSP service in its own thread."""

    def __init__(self, ctx, args, service, handler, stop):
        super().__init__(name=service.decode(), daemon=True)
        self.ctx = ctx
        self.args = args
        self.service = service
        self.handler = handler
        self.stop = stop
        self.socket = None
        self.liveness = args.liveness
        self.heartbeat_at = 0.0
        self.connect()

    def send(self, frames):
        if self.args.verbose:
            log("%s sending %s" % (self.name, show_frames(frames)))
        self.socket.send_multipart(frames)

    def connect(self):
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(self.args.broker)
        self.send([b"", MDPW01, READY, self.service])
        self.liveness = self.args.liveness
        self.heartbeat_at = now_ms() + self.args.heartbeat_interval

    def run(self):
        interval = self.args.heartbeat_interval
        try:
            while not self.stop.is_set():
                if self.socket.poll(interval, zmq.POLLIN):
                    frames = self.socket.recv_multipart()
                    if self.args.verbose:
                        log("%s received %s" % (self.name, show_frames(frames)))
                    self.liveness = self.args.liveness
                    if len(frames) < 3 or frames[0] != b"" or frames[1] != MDPW01:
                        log("%s: invalid message from broker %s" % (self.name, show_frames(frames)))
                        continue
                    command, rest = frames[2], frames[3:]
                    if command == REQUEST:
                        client = rest[0] if rest else b""
                        body = rest[1:]
                        if body and body[0] == b"":
                            body = body[1:]
                        try:
                            reply = self.handler(body)
                        except OSError as error:
                            log("%s: storage failure (%s)" % (self.name, error))
                            reply = [b"500"]
                        log("%s from %s: %s" % (self.name, show_identity(client), reply[0].decode()))
                        self.send([b"", MDPW01, REPLY, client, b""] + reply)
                    elif command == DISCONNECT:
                        log("%s: DISCONNECT from broker" % self.name)
                        self.connect()
                    elif command != HEARTBEAT:
                        log("%s: invalid input message %s" % (self.name, show_frames(frames)))
                else:
                    self.liveness -= 1
                    if self.liveness == 0:
                        log("%s: disconnected from broker - retrying in %d ms" % (
                            self.name, self.args.reconnect))
                        sleep_ms(self.args.reconnect)
                        self.connect()
                if now_ms() > self.heartbeat_at:
                    self.send([b"", MDPW01, HEARTBEAT])
                    self.heartbeat_at = now_ms() + interval
        finally:
            self.socket.close(linger=0)


# -- the dispatcher -------------------------------------------------------------------------------

def service_success(ctx, storage, args, uuid):
    """Runs one stored request; True when it is done (replied, or closed meanwhile)."""
    try:
        request = load_frames(storage.path(uuid, "req"))
    except FileNotFoundError:
        return True
    if not request:
        return True
    service, body = request[0], request[1:]
    client = MajordomoClient(ctx, args.broker, args.timeout, 1, log, args.verbose)
    try:
        mmi = client.send(b"mmi.service", [service])
        if not mmi or mmi[0] != b"200":
            return False
        reply = client.send(service, body)
        if reply is None:
            return False
        save_frames(storage.path(uuid, "rep"), reply)
        log("reply for %s stored (%s)" % (uuid.decode(), show_frames(reply)))
        return True
    except AssertionAbort as why:
        log("invalid reply from broker %s" % why)
        return False
    finally:
        client.socket.close(linger=0)


def dispatch_pass(ctx, storage, args):
    path = storage.queue_path()
    if not os.path.exists(path):
        return
    with open(path, "r+b") as f:
        data = f.read()
        at = 0
        while at + 33 <= len(data):
            status, uuid = data[at:at + 1], data[at + 1:at + 33]
            if status == b"-" and service_success(ctx, storage, args, uuid):
                f.seek(at)
                f.write(b"+")
            at += 33
            if data[at:at + 2] == b"\r\n":
                at += 2
            elif data[at:at + 1] == b"\n":
                at += 1


def main(ctx):
    p = parser("titanic", __doc__)
    p.add_argument("--broker", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--dir", default=".titanic", help="directory of requests, replies and queue")
    p.add_argument("--uuid-case", choices=("upper", "lower"), default="upper",
                   help="case of the UUIDs handed out: C reference (upper) or Python (lower)")
    p.add_argument("--idle-ms", type=float, default=1000.0, metavar="MS",
                   help="longest wait for a new request between two dispatcher passes")
    p.add_argument("--timeout", type=float, default=1000.0, metavar="MS",
                   help="the dispatcher's MDP client timeout (one send per attempt)")
    p.add_argument("--heartbeat-interval", type=float, default=2500.0, metavar="MS",
                   help="heartbeat interval of the three workers, also their poll timeout")
    p.add_argument("--liveness", type=int, default=3, metavar="N",
                   help="silent polls before a worker considers the broker dead")
    p.add_argument("--reconnect", type=float, default=2500.0, metavar="MS",
                   help="delay before a worker registers again after a heartbeat failure")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    storage = Storage(args.dir)
    pending = queue.Queue()
    stop = threading.Event()
    workers = [ServiceWorker(ctx, args, name, handler, stop)
               for name, handler in make_services(storage, args, pending).items()]
    for worker in workers:
        worker.start()
    log("ready: titanic.request, titanic.reply, titanic.close via %s, storage in %s" % (
        args.broker, args.dir))
    try:
        while True:
            try:
                uuid = pending.get(timeout=args.idle_ms / 1000.0)
            except queue.Empty:
                uuid = None
            if uuid is not None:
                os.makedirs(storage.dir, exist_ok=True)
                with open(storage.queue_path(), "ab") as f:
                    f.write(b"-" + uuid + b"\n")
            dispatch_pass(ctx, storage, args)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=args.heartbeat_interval / 1000.0 + 1.0)


if __name__ == "__main__":
    run(main, log)
