"""Majordomo broker peer (the role of the Guide's mdbroker, RFC 7/MDP 0.1 with RFC 8/MMI), for
interop tests.

One ROUTER socket, bound to every --bind endpoint, carries clients and workers alike. One poll
loop, timeout --heartbeat-interval. A message is [sender][empty][header][...]; the empty frame is
taken off without being checked; header "MDPC01" is a client, "MDPW01" a worker, anything else
is logged as invalid and dropped.

Client request [C][""]["MDPC01"][service][body...]: the service record is created for any name
(also never-served ones, which then wait forever: requests are neither expired nor bounded). A
name starting with "mmi." is answered at once, never queued: the LAST body frame is replaced by
the code ("mmi.service": "200" when a record for the name in that frame exists with at least one
registered worker, else "404"; any other mmi. name: "501") and the reply goes out as
[C][""]["MDPC01"][service][...earlier body frames...][code]. Otherwise the request joins the
service's FIFO and is dispatched to the service's oldest idle worker as
[W][""]["MDPW01"][0x02][C][""][body...].

Worker commands [W][""]["MDPW01"][command][...], "known" meaning registered before this message:
* READY [service]: known -> DISCONNECT and delete (a second READY); an identity starting with
  "mmi." -> DISCONNECT and delete (the reference tests the IDENTITY here, not the service name);
  else registered for the service, idle, and the service's queue is dispatched;
* REPLY [C][""][body...]: known -> [C][""]["MDPC01"][its service][body...] to the client and the
  worker is idle again (appended to the idle lists even when it already was idle, as the
  reference); unknown -> DISCONNECT;
* HEARTBEAT: known -> expiry refreshed, its place in the idle list unchanged; unknown ->
  DISCONNECT (how workers re-register after a broker restart);
* DISCONNECT: deleted without a word; any other command: logged, the record it created is kept.

Heartbeats and expiry concern IDLE workers only (busy ones are never heartbeated nor expired,
as the reference): after each poll, once the interval is due, idle workers silent for
--heartbeat-interval x --liveness are deleted without DISCONNECT, walking the idle list from its
head and stopping at the first live one; then every idle worker gets [W][""]["MDPW01"][0x04].
The same purge runs before every dispatch.

Where the reference asserts (a client request without a body frame, a READY without a service,
a message shorter than 3 frames) this peer logs "invalid message" and drops the message.
"""

import zmq

from _common import make_logger, now_ms, parser, run, show_frames, show_identity

log = make_logger("mdbroker")

MDPC01 = b"MDPC01"
MDPW01 = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = (bytes([n]) for n in range(1, 6))
COMMAND_NAMES = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY", HEARTBEAT: "HEARTBEAT",
                 DISCONNECT: "DISCONNECT"}


class Service:
    def __init__(self, name):
        self.name = name
        self.requests = []  # [C][""][body...], oldest first
        self.waiting = []  # idle workers of this service, oldest first
        self.workers = 0  # registered workers (idle or busy)


class Worker:
    def __init__(self, identity):
        self.identity = identity
        self.key = identity.hex()
        self.service = None
        self.expiry = 0.0


def remove_first(items, item):
    """Removes the first occurrence only, when there is one (as CZMQ's zlist_remove)."""
    try:
        items.remove(item)
    except ValueError:
        pass


class Broker:
    def __init__(self, socket, interval, liveness, verbose):
        self.socket = socket
        self.interval = interval
        self.expiry_ms = interval * liveness
        self.verbose = verbose
        self.services = {}  # name (bytes) -> Service
        self.workers = {}  # hex identity -> Worker
        self.waiting = []  # idle workers of every service, oldest first
        self.heartbeat_at = now_ms() + interval

    def send(self, frames):
        if self.verbose:
            log("sending %s" % show_frames(frames))
        self.socket.send_multipart(frames)

    # -- services and workers ------------------------------------------------------------------

    def require_service(self, name):
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = Service(name)
        return service

    def require_worker(self, identity):
        worker = self.workers.get(identity.hex())
        if worker is None:
            worker = self.workers[identity.hex()] = Worker(identity)
        return worker

    def send_to_worker(self, worker, command, frames=()):
        self.send([worker.identity, b"", MDPW01, command] + list(frames))

    def delete_worker(self, worker, disconnect, reason):
        if disconnect:
            self.send_to_worker(worker, DISCONNECT)
            log("DISCONNECT sent to %s (%s)" % (show_identity(worker.identity), reason))
        else:
            log("worker %s deleted (%s)" % (show_identity(worker.identity), reason))
        if worker.service is not None:
            remove_first(worker.service.waiting, worker)
            worker.service.workers -= 1
        remove_first(self.waiting, worker)
        self.workers.pop(worker.key, None)

    def worker_waiting(self, worker):
        self.waiting.append(worker)
        worker.service.waiting.append(worker)
        worker.expiry = now_ms() + self.expiry_ms
        self.dispatch(worker.service)

    def purge(self):
        """Deletes expired idle workers from the head of the idle list, up to the first live one."""
        now = now_ms()
        while self.waiting:
            worker = self.waiting[0]
            if now < worker.expiry:
                break
            log("worker expired %s" % show_identity(worker.identity))
            self.delete_worker(worker, False, "expired")

    def dispatch(self, service, request=None):
        if request is not None:
            service.requests.append(request)
        self.purge()
        while service.waiting and service.requests:
            worker = service.waiting.pop(0)
            remove_first(self.waiting, worker)
            request = service.requests.pop(0)
            self.send_to_worker(worker, REQUEST, request)
            log("request from %s for %s dispatched to %s" % (
                show_identity(request[0]), service.name.decode("latin-1"),
                show_identity(worker.identity)))

    # -- messages --------------------------------------------------------------------------------

    def on_message(self, frames):
        if len(frames) < 3:
            log("invalid message (%d frames, the reference would abort): %s" % (
                len(frames), show_frames(frames)))
            return
        sender, _empty, header, rest = frames[0], frames[1], frames[2], frames[3:]
        if header == MDPC01:
            self.on_client(sender, rest)
        elif header == MDPW01:
            self.on_worker(sender, rest)
        else:
            log("invalid message: %s" % show_frames(frames))

    def on_client(self, sender, frames):
        if len(frames) < 2:
            log("invalid message from client %s (no body, the reference would abort): %s" % (
                show_identity(sender), show_frames(frames)))
            return
        service_frame, body = frames[0], frames[1:]
        service = self.require_service(service_frame)
        if service_frame.startswith(b"mmi."):
            code = b"501"
            if service_frame == b"mmi.service":
                wanted = self.services.get(body[-1])
                code = b"200" if wanted is not None and wanted.workers > 0 else b"404"
            self.send([sender, b"", MDPC01, service_frame] + body[:-1] + [code])
            log("mmi request %s %s from %s: %s" % (
                service_frame.decode("latin-1"), body[-1].decode("latin-1"),
                show_identity(sender), code.decode()))
            return
        log("request from %s for %s (%d queued before)" % (
            show_identity(sender), service_frame.decode("latin-1"), len(service.requests)))
        self.dispatch(service, [sender, b""] + body)

    def on_worker(self, sender, frames):
        if not frames:
            log("invalid message from worker %s (no command, the reference would abort)" %
                show_identity(sender))
            return
        command, rest = frames[0], frames[1:]
        known = sender.hex() in self.workers
        worker = self.require_worker(sender)
        name = COMMAND_NAMES.get(command, command.hex())
        if command == READY:
            if known:
                self.delete_worker(worker, True, "READY from a registered worker")
            elif sender.startswith(b"mmi."):
                self.delete_worker(worker, True, "reserved identity")
            elif not rest:
                log("invalid READY from %s (no service, the reference would abort)" %
                    show_identity(sender))
                self.workers.pop(worker.key, None)
            else:
                worker.service = self.require_service(rest[0])
                worker.service.workers += 1
                log("worker ready %s for %s (%d registered)" % (
                    show_identity(sender), rest[0].decode("latin-1"), worker.service.workers))
                self.worker_waiting(worker)
        elif command == REPLY:
            if known and worker.service is None:
                log("invalid REPLY from %s (never said READY, the reference would crash)" %
                    show_identity(sender))
            elif known:
                client, body = rest[0] if rest else b"", rest[1:]
                if body and body[0] == b"":
                    body = body[1:]
                self.send([client, b"", MDPC01, worker.service.name] + body)
                log("reply from %s forwarded to %s" % (
                    show_identity(sender), show_identity(client)))
                self.worker_waiting(worker)
            else:
                self.delete_worker(worker, True, "REPLY from unknown worker")
        elif command == HEARTBEAT:
            if known:
                worker.expiry = now_ms() + self.expiry_ms
            else:
                self.delete_worker(worker, True, "HEARTBEAT from unknown worker")
        elif command == DISCONNECT:
            self.delete_worker(worker, False, "DISCONNECT from worker")
        else:
            log("invalid input message from %s: command %s" % (show_identity(sender), name))

    def tick(self):
        if now_ms() > self.heartbeat_at:
            self.purge()
            for worker in self.waiting:
                self.send_to_worker(worker, HEARTBEAT)
            self.heartbeat_at = now_ms() + self.interval


def main(ctx):
    p = parser("mdbroker", __doc__)
    p.add_argument("--bind", default="tcp://*:5555",
                   help="endpoint(s) to bind for clients and workers, comma-separated")
    p.add_argument("--heartbeat-interval", type=float, default=2500.0, metavar="MS",
                   help="HEARTBEAT_INTERVAL, also the poll timeout")
    p.add_argument("--liveness", type=int, default=3, metavar="N",
                   help="HEARTBEAT_LIVENESS: an idle worker expires after interval x liveness")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    socket = ctx.socket(zmq.ROUTER)
    socket.linger = 0
    bound = []
    for endpoint in args.bind.split(","):
        socket.bind(endpoint.strip())
        bound.append(socket.getsockopt_string(zmq.LAST_ENDPOINT))
    broker = Broker(socket, args.heartbeat_interval, args.liveness, args.verbose)
    log("ready: MDP broker/0.2.0 is active at %s" % ", ".join(bound))

    while True:
        if socket.poll(args.heartbeat_interval, zmq.POLLIN):
            frames = socket.recv_multipart()
            if args.verbose:
                log("received %s" % show_frames(frames))
            broker.on_message(frames)
        broker.tick()


if __name__ == "__main__":
    run(main, log)
