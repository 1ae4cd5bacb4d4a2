"""Clone client peer (the role of the Guide's Clone client agent, clone.c, as RFC 12/CHP describes
it), for interop tests: follows one server's map, and can set, delete and dump keys.

From the server's base address --server tcp://host:P (default tcp://localhost:5556) it opens:

* a DEALER to P for snapshots: it sends ["ICANHAZ?"][subtree] and stores every reply (an empty
  body deletes) until ["KTHXBAI"][sequence]..., whose sequence becomes the client's; at most two
  requests are left unanswered, as in the reference;
* a SUB to P+1 subscribed to --subtree and to "HUGZ" (as the reference); once synchronised, an
  update is applied only when its sequence is above the client's, which it then becomes; HUGZ is
  never stored (the reference stores it when its sequence is ahead, deleting a key "HUGZ");
* a PUB to P+2 for its own updates: [key][sequence 0][new random uuid]["ttl=N\\n"][value], the
  ttl property always present, "ttl=0" included, as in the C reference; the value is stored
  locally at once (an optimistic write, as the reference).

As in the reference, the snapshot is asked for right after subscribing: updates published before
the subscription reaches the server are missed. Anything from the server (on either socket)
proves it alive; after --server-ttl of silence the client logs "server didn't give HUGZ" and asks
the same server for a snapshot again, keeping its map (the reference's behaviour with one server).

Updates given with --set key=value and --delete key (both repeatable, sent back to back in that
order, --ttl seconds for the sets), then --random N (N updates of a key under the subtree from 0
to 9999 to a value from 0 to 999999, one every --interval, with --ttl or with a random ttl of 0
to 29 s under --random-ttl) are sent once synchronised, the first HUGZ heard and --settle ms
passed: a PUB drops what it sends before the server's subscription reaches it (the reference has
this window too).

Printed: "synchronised: N keys, sequence S" after each snapshot; "heard HUGZ (sequence S)" for
the first HUGZ; "#S key=value" or "#S key deleted" for every update applied; "sent key=value" or
"sent key deleted" for its own updates; "invalid message" for anything that is not a five-frame
key-value message. On SIGUSR1, and with --dump once its updates are sent (after --dump-delay ms),
it prints its map: "key=value" lines in key order, then "keys N sequence S"; --dump then exits 0.
"""

import random
import signal

import zmq

from _common import make_logger, now_ms, parser, run, show_frames
from _kvmsg import HUGZ, ICANHAZ, KTHXBAI, Invalid, KvMsg, new_uuid, text

log = make_logger("clonecli")

INITIAL, SYNCING, ACTIVE = "INITIAL", "SYNCING", "ACTIVE"


def split_server(address):
    """`tcp://host:P` as (`tcp://host`, P), or None when it does not end in a port."""
    host, _, port = address.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def main(ctx):
    p = parser("clonecli", __doc__)
    p.add_argument("--server", default="tcp://localhost:5556", metavar="tcp://host:P",
                   help="the server's base address")
    p.add_argument("--subtree", default="", help="follow only keys starting with this")
    p.add_argument("--server-ttl", type=float, default=5000.0, metavar="MS",
                   help="SERVER_TTL: silence before asking for a snapshot again")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a key")
    p.add_argument("--delete", action="append", default=[], metavar="KEY", help="delete a key")
    p.add_argument("--ttl", type=int, default=0, metavar="S", help="ttl of --set and --random")
    p.add_argument("--random", type=int, default=0, metavar="N", help="send N random updates")
    p.add_argument("--random-ttl", action="store_true", help="random ttl of 0 to 29 s")
    p.add_argument("--interval", type=float, default=1000.0, metavar="MS",
                   help="pause between random updates")
    p.add_argument("--settle", type=float, default=200.0, metavar="MS",
                   help="wait after the first HUGZ before sending updates")
    p.add_argument("--dump", action="store_true", help="print the map once the updates are sent, exit")
    p.add_argument("--dump-delay", type=float, default=0.0, metavar="MS",
                   help="with --dump: wait this long after the last update before printing")
    p.add_argument("--verbose", action="store_true", help="log every message received")
    args = p.parse_args()

    server = split_server(args.server)
    if server is None:
        p.error("--server must be like tcp://host:port, got %r" % args.server)
    host, port = server
    subtree = args.subtree.encode("utf-8")
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect("%s:%d" % (host, port))
    subscriber = ctx.socket(zmq.SUB)
    subscriber.linger = 0
    subscriber.setsockopt(zmq.SUBSCRIBE, subtree)
    subscriber.setsockopt(zmq.SUBSCRIBE, HUGZ)
    subscriber.connect("%s:%d" % (host, port + 1))
    publisher = ctx.socket(zmq.PUB)
    publisher.linger = 0
    publisher.connect("%s:%d" % (host, port + 2))

    outbox = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error("--set needs key=value, got %r" % item)
        outbox.append((key.encode("utf-8"), value.encode("utf-8"), args.ttl, 0.0))
    for key in args.delete:
        outbox.append((key.encode("utf-8"), b"", 0, 0.0))
    for _ in range(args.random):
        ttl = random.randrange(30) if args.random_ttl else args.ttl
        outbox.append(((args.subtree + str(random.randrange(10000))).encode("utf-8"),
                       str(random.randrange(1000000)).encode("utf-8"), ttl, args.interval))

    table = {}
    sequence = 0
    state = INITIAL
    requests = 0
    expiry = now_ms() + args.server_ttl
    heard_hugz = False
    send_from = None
    next_send = 0.0
    dump_at = None
    dump_requested = False

    def on_usr1(_signum, _frame):
        nonlocal dump_requested
        dump_requested = True

    signal.signal(signal.SIGUSR1, on_usr1)

    def dump():
        for key in sorted(table):
            log("%s=%s" % (text(key), text(table[key].body)))
        log("keys %d sequence %d" % (len(table), sequence))

    def show(msg):
        if msg.is_delete:
            return "%s deleted" % text(msg.key)
        return "%s=%s" % (text(msg.key), text(msg.body))

    log("ready: server %s, subtree '%s', %d update(s) to send" % (
        args.server, args.subtree, len(outbox)))

    # The reference polls the snapshot socket while syncing and the subscriber once active, so
    # updates wait in the subscriber's queue during a snapshot.
    syncing = zmq.Poller()
    syncing.register(dealer, zmq.POLLIN)
    active = zmq.Poller()
    active.register(subscriber, zmq.POLLIN)

    while True:
        if state == INITIAL:
            if requests < 2:
                dealer.send_multipart([ICANHAZ, subtree])
                requests += 1
            expiry = now_ms() + args.server_ttl
            state = SYNCING

        if dump_requested:
            dump_requested = False
            dump()
        if send_from is not None and outbox and now_ms() >= max(send_from, next_send):
            key, value, ttl, pause = outbox.pop(0)
            msg = KvMsg(key, 0, new_uuid(), [("ttl", str(ttl))], value)
            publisher.send_multipart(msg.encode())
            msg.store(table)
            log("sent %s" % show(msg))
            next_send = now_ms() + pause
        if args.dump and send_from is not None and not outbox:
            if dump_at is None:
                dump_at = now_ms() + args.dump_delay
            if now_ms() >= dump_at:
                dump()
                return 0

        # Short polls, so that a SIGUSR1 dump and a due update do not wait for the server.
        socket = dealer if state == SYNCING else subscriber
        poller = syncing if state == SYNCING else active
        wait = min(100.0, expiry - now_ms())
        if send_from is not None and outbox:
            wait = min(wait, max(send_from, next_send) - now_ms())
        if not poller.poll(max(0.0, wait)):
            if now_ms() >= expiry:
                log("server didn't give HUGZ, asking for a snapshot again")
                state = INITIAL
            continue
        frames = socket.recv_multipart()
        expiry = now_ms() + args.server_ttl
        if args.verbose:
            log("%s received %s" % ("snapshot socket" if state == SYNCING else "subscriber",
                                    show_frames(frames)))
        try:
            msg = KvMsg.decode(frames)
        except Invalid as why:
            log("invalid message (%s): %s" % (why, show_frames(frames)))
            continue
        if state == SYNCING:
            requests = 0
            if msg.key == KTHXBAI:
                sequence = msg.sequence
                state = ACTIVE
                log("synchronised: %d keys, sequence %d" % (len(table), sequence))
            else:
                msg.store(table)
            continue
        if msg.key == HUGZ:
            if not heard_hugz:
                heard_hugz = True
                log("heard HUGZ (sequence %d)" % msg.sequence)
                send_from = now_ms() + args.settle
        elif msg.sequence > sequence:
            sequence = msg.sequence
            msg.store(table)
            log("#%d %s" % (sequence, show(msg)))


if __name__ == "__main__":
    run(main, log)
