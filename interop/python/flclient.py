"""Freelance client peer (the roles of the Guide's flclient1, flclient2 and flclient3 on its agent
flcliapi), written for interop tests. --model chooses the role; the servers are the positional
endpoints, in order of preference. The client makes --count requests, one after the other with
--interval ms between them, each with the body --body (one frame).

* --model 1 (flclient1): for each attempt a new REQ socket (linger 0) connects to one endpoint,
  sends the body and waits up to --timeout ms (REQUEST_TIMEOUT), then is closed whatever
  happened. With one endpoint a request gets --retries attempts on it (MAX_RETRIES); with several,
  one attempt on each, in order, and no second round. The reply is taken as it is.
* --model 2 (flclient2): one DEALER connected to every endpoint, without ZMQ_IMMEDIATE (as the
  reference: copies for a server that is down queue up for it). Request N (from 1) is
  [""][N][body], sent once per endpoint, which the DEALER deals out round robin. A reply must be
  exactly [""][sequence]["OK"] (else the reference's assertion fails: "assertion failed", exit
  status 3); one with another sequence is stale and dropped; the request fails when no reply
  with its sequence came within --timeout ms (GLOBAL_TIMEOUT).
* --model 3 (flclient3 on flcliapi, RFC 10/FLP): an agent with one ROUTER (no identity, not
  mandatory) connected to every endpoint, sleeping --settle-ms after each connect. A server is
  addressed by its endpoint string; it starts not alive, first in the list of servers to try in
  the order connected, is pinged (["PING"]) when it has been silent for --ping-interval ms, and
  counts as gone after --server-ttl ms of silence (SERVER_TTL). Anything from a server refreshes
  it; one heard again after it was dropped from the list goes back at the end. Request N is
  [endpoint][N][body]; while it is outstanding, every time the agent wakes up (any message, any
  ping deadline) it drops the expired servers from the head of the list and sends the request
  again to the first one left: the reference's resend on every wake-up, kept because it shows on
  the wire (servers see duplicates). A reply counts only when its first frame is the decimal of
  the outstanding request's number; the request fails after --timeout ms (GLOBAL_TIMEOUT).
  Between requests the agent keeps pinging and reading. Fixes of the reference kept off the wire:
  a reply from an unknown identity is logged and dropped (the reference asserts), and a server is
  never listed twice (the reference appends it again on its first reply).

Each success prints "request N ok from <endpoint> in T ms: <reply frames>" (model 2 cannot tell
the server: "from *"); model 3 also logs "server <endpoint> is alive" when a server is heard for
the first time or again after it was dropped. After --count successes it prints
"done: N requests OK" and exits 0. The first failure prints "request N failed: ..." and exits 2,
as the references stop at their first failure; 0 on SIGTERM/SIGINT.
"""

import zmq

from _common import make_logger, now_ms, parser, run, show_frames, sleep_ms

log = make_logger("flclient")

PING = b"PING"
OK = b"OK"


class AssertionAbort(Exception):
    """Where the reference asserts (and aborts): a malformed reply."""


def show_body(frames):
    """Frames for humans: printable ASCII text as is (spaces included), anything else as hex."""
    return "|".join(f.decode("ascii") if f and all(0x20 <= b < 0x7F for b in f) else (f.hex().upper() or "''")
                    for f in frames)


def parse_sequence(frame):
    """The number in a decimal frame, or None (a PONG or anything else is no reply)."""
    try:
        text = frame.decode("ascii")
    except UnicodeDecodeError:
        return None
    return int(text) if text.isdigit() else None


class SimpleClient:
    """Model 1: a fresh REQ socket per attempt, servers tried in order."""

    def __init__(self, ctx, endpoints, args):
        self.ctx = ctx
        self.endpoints = endpoints
        self.args = args

    def try_request(self, endpoint, body):
        sock = self.ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(endpoint)
        try:
            sock.send_multipart(body)
            if sock.poll(self.args.timeout, zmq.POLLIN):
                return sock.recv_multipart()
            return None
        finally:
            sock.close(linger=0)

    def request(self, body):
        if len(self.endpoints) == 1:
            plan = self.endpoints * self.args.retries
        else:
            plan = list(self.endpoints)
        for attempt, endpoint in enumerate(plan, 1):
            reply = self.try_request(endpoint, body)
            if reply is not None:
                return endpoint, reply
            log("no reply from %s within %d ms (attempt %d)" % (endpoint, self.args.timeout, attempt))
        return None, None


class ShotgunClient:
    """Model 2: every request to every server over one DEALER, the first matching reply wins."""

    def __init__(self, ctx, endpoints, args):
        self.args = args
        self.sequence = 0
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.linger = 0
        for endpoint in endpoints:
            self.socket.connect(endpoint)
        self.servers = len(endpoints)

    def request(self, body):
        self.sequence += 1
        request = [b"", str(self.sequence).encode("ascii")] + body
        for _ in range(self.servers):
            self.socket.send_multipart(request)
        deadline = now_ms() + self.args.timeout
        while now_ms() < deadline:
            if not self.socket.poll(max(0.0, deadline - now_ms()), zmq.POLLIN):
                break
            reply = self.socket.recv_multipart()
            if self.args.verbose:
                log("received %s" % show_frames(reply))
            if len(reply) != 3 or reply[0] != b"" or reply[2] != OK:
                raise AssertionAbort(show_frames(reply))
            if parse_sequence(reply[1]) == self.sequence:
                return "*", reply[2:]
            if self.args.verbose:
                log("stale reply %s dropped" % show_frames(reply[1:2]))
        return None, None


class Server:
    def __init__(self, endpoint, now, args):
        self.endpoint = endpoint
        self.identity = endpoint.encode()
        self.alive = False
        self.ping_at = now + args.ping_interval
        self.expires = now + args.server_ttl


class FreelanceAgent:
    """Model 3: the flcliapi agent's loop, run in this thread instead of a background one."""

    def __init__(self, ctx, args):
        self.args = args
        self.router = ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.servers = {}
        self.actives = []
        self.sequence = 0
        self.request = None
        self.expires = 0.0

    def connect(self, endpoint):
        self.router.connect(endpoint)
        server = Server(endpoint, now_ms(), self.args)
        self.servers[server.identity] = server
        self.actives.append(server)
        sleep_ms(self.args.settle_ms)

    def send(self, frames):
        if self.args.verbose:
            log("sending %s" % show_frames(frames))
        self.router.send_multipart(frames)

    def step(self, until):
        """One pass of the agent's loop, waiting for input no later than `until`. Returns the
        reply body when the outstanding request was answered."""
        timeout = until
        if self.request is not None:
            timeout = min(timeout, self.expires)
        for server in self.servers.values():
            timeout = min(timeout, server.ping_at)
        answered = None
        if self.router.poll(max(0.0, timeout - now_ms()), zmq.POLLIN):
            answered = self.receive()
        if answered is None and self.request is not None:
            self.dispatch()
        now = now_ms()
        for server in self.servers.values():
            if now >= server.ping_at:
                self.send([server.identity, PING])
                server.ping_at = now + self.args.ping_interval
        return answered

    def receive(self):
        frames = self.router.recv_multipart()
        if self.args.verbose:
            log("received %s" % show_frames(frames))
        server = self.servers.get(frames[0])
        if server is None:
            log("reply from an unknown server identity %s dropped" % show_frames(frames[:1]))
            return None
        now = now_ms()
        if not server.alive:
            server.alive = True
            if server not in self.actives:
                self.actives.append(server)
            log("server %s is alive" % server.endpoint)
        server.ping_at = now + self.args.ping_interval
        server.expires = now + self.args.server_ttl
        if self.request is not None and len(frames) >= 2:
            if parse_sequence(frames[1]) == self.sequence:
                self.request = None
                return server.endpoint, frames[2:]
        return None

    def dispatch(self):
        """Fails the request when it expired, else sends it to the first unexpired server."""
        now = now_ms()
        if now >= self.expires:
            self.request = None
            return
        while self.actives:
            server = self.actives[0]
            if now >= server.expires:
                self.actives.pop(0)
                server.alive = False
                log("server %s expired" % server.endpoint)
                continue
            self.send([server.identity, str(self.sequence).encode("ascii")] + self.request)
            return

    def call(self, body):
        self.sequence += 1
        self.request = list(body)
        self.expires = now_ms() + self.args.timeout
        self.dispatch()
        while self.request is not None:
            answered = self.step(float("inf"))
            if answered is not None:
                return answered
        return None, None

    def idle(self, ms):
        """Runs the loop with no request outstanding for `ms` (pings and pongs go on)."""
        end = now_ms() + ms
        while now_ms() < end:
            self.step(end)


def main(ctx):
    p = parser("flclient", __doc__)
    p.add_argument("endpoints", nargs="+", metavar="ENDPOINT", help="the servers, in order of preference")
    p.add_argument("--model", type=int, choices=(1, 2, 3), required=True,
                   help="the Freelance model whose client to play")
    p.add_argument("--count", type=int, default=1, metavar="N", help="requests to make")
    p.add_argument("--interval", type=float, default=0.0, metavar="MS", help="pause between requests")
    p.add_argument("--body", default=None,
                   help='the request body; None means "Hello world" for model 1, "random name" otherwise')
    p.add_argument("--timeout", type=float, default=None, metavar="MS",
                   help="None means the model's: per attempt 1000 (model 1), per request 2500 (model 2) or 3000 (model 3)")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="model 1 with one endpoint: attempts per request (MAX_RETRIES)")
    p.add_argument("--ping-interval", type=float, default=2000.0, metavar="MS",
                   help="model 3: PING_INTERVAL")
    p.add_argument("--server-ttl", type=float, default=6000.0, metavar="MS",
                   help="model 3: SERVER_TTL")
    p.add_argument("--settle-ms", type=float, default=100.0, metavar="MS",
                   help="model 3: pause after each connect")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()
    if args.timeout is None:
        args.timeout = {1: 1000.0, 2: 2500.0, 3: 3000.0}[args.model]
    body_text = args.body if args.body is not None else ("Hello world" if args.model == 1 else "random name")
    body = [body_text.encode()]

    agent = None
    if args.model == 1:
        client = SimpleClient(ctx, args.endpoints, args)
        make_request = client.request
    elif args.model == 2:
        client = ShotgunClient(ctx, args.endpoints, args)
        make_request = client.request
    else:
        agent = FreelanceAgent(ctx, args)
        for endpoint in args.endpoints:
            agent.connect(endpoint)
        make_request = agent.call
    log("ready: model %d, servers %s" % (args.model, ", ".join(args.endpoints)))

    for n in range(1, args.count + 1):
        started = now_ms()
        try:
            server, reply = make_request(body)
        except AssertionAbort as why:
            log("assertion failed: unexpected reply %s" % why)
            return 3
        if reply is None:
            log("request %d failed: no reply within %d ms" % (n, now_ms() - started))
            return 2
        log("request %d ok from %s in %.1f ms: %s" % (n, server, now_ms() - started, show_body(reply)))
        if n < args.count and args.interval > 0:
            if agent is not None:
                agent.idle(args.interval)
            else:
                sleep_ms(args.interval)
    log("done: %d requests OK" % args.count)
    return 0


if __name__ == "__main__":
    run(main, log)
