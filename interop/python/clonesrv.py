"""Clone server peer (the role of the Guide's Clone server as RFC 12/CHP describes it: clonesrv6
without its Binary Star pair), for interop tests: one standalone server, always active.

Sockets, from the base port P (--port, default 5556) on --host (default tcp://*):

* SNAPSHOT, a ROUTER bound to P: a request [id]["ICANHAZ?"][subtree] (the subtree frame may be
  missing: empty) is answered with every stored entry whose key starts with the subtree, exactly
  as stored ([id][key][sequence][uuid][properties][body], with the ABSOLUTE ttl, see below), then
  [id]["KTHXBAI"][current sequence][""][""][body], where the body is empty as in the C reference
  (--kthxbai-body subtree: the subtree, as CHP and the Python reference). Any other request is
  logged ("bad request") and ignored;
* PUBLISHER, a PUB bound to P+1: every update, and HUGZ ["HUGZ"][current sequence][""][""][""]
  every --hugz-interval (the reference sends the counter, CHP says zero);
* COLLECTOR, a SUB bound to P+2, subscribed to everything: client updates (KVSET).

Each collected update gets the next sequence number (the first is 1) and is published at once
with the properties as received (a relative ttl); then a non-zero "ttl" property (seconds, read
as C atoi does) is replaced by the absolute expiry in milliseconds since the epoch, as the C
reference stores it, and the update is stored (an empty body deletes the key). Every
--flush-interval the entries whose expiry has passed are deleted: each gets the next sequence
number and is published as a delete [key][sequence][original uuid][properties with the absolute
ttl][""]. The UUID of an update is kept as the client sent it.

A message on the collector that is not five frames with an 8-byte sequence and a 16-byte or
empty uuid is logged as invalid and dropped (the reference would crash or desynchronise).
Logged events: "update #N key" / "delete #N key", "expired #N key", "snapshot of N keys to ID",
"bad request", "invalid message"; --verbose also logs every message received.
"""

import time

import zmq

from _common import make_logger, now_ms, parser, run, show_frames, show_identity
from _kvmsg import HUGZ, ICANHAZ, KTHXBAI, Invalid, KvMsg, leading_int, text

log = make_logger("clonesrv")


def epoch_ms():
    return int(time.time() * 1000)


def main(ctx):
    p = parser("clonesrv", __doc__)
    p.add_argument("--port", type=int, default=5556, metavar="P",
                   help="base port: snapshots P, updates P+1, collector P+2")
    p.add_argument("--host", default="tcp://*", help="host part of the bound endpoints")
    p.add_argument("--hugz-interval", type=float, default=1000.0, metavar="MS",
                   help="interval of HUGZ on the publisher")
    p.add_argument("--flush-interval", type=float, default=1000.0, metavar="MS",
                   help="interval of the TTL flush")
    p.add_argument("--kthxbai-body", choices=("empty", "subtree"), default="empty",
                   help="body of KTHXBAI: empty (C reference) or the subtree (CHP)")
    p.add_argument("--verbose", action="store_true", help="log every message received")
    args = p.parse_args()

    snapshot = ctx.socket(zmq.ROUTER)
    snapshot.linger = 0
    snapshot.bind("%s:%d" % (args.host, args.port))
    publisher = ctx.socket(zmq.PUB)
    publisher.linger = 0
    publisher.bind("%s:%d" % (args.host, args.port + 1))
    collector = ctx.socket(zmq.SUB)
    collector.linger = 0
    collector.setsockopt(zmq.SUBSCRIBE, b"")
    collector.bind("%s:%d" % (args.host, args.port + 2))

    table = {}
    sequence = 0
    hugz_at = now_ms() + args.hugz_interval
    flush_at = now_ms() + args.flush_interval
    log("ready: snapshot %s, publisher %s, collector %s" % (
        snapshot.getsockopt_string(zmq.LAST_ENDPOINT),
        publisher.getsockopt_string(zmq.LAST_ENDPOINT),
        collector.getsockopt_string(zmq.LAST_ENDPOINT)))

    poller = zmq.Poller()
    poller.register(snapshot, zmq.POLLIN)
    poller.register(collector, zmq.POLLIN)

    while True:
        ready = dict(poller.poll(max(0.0, min(hugz_at, flush_at) - now_ms())))

        if snapshot in ready:
            frames = snapshot.recv_multipart()
            if args.verbose:
                log("snapshot socket received %s" % show_frames(frames))
            identity = frames[0]
            if len(frames) in (2, 3) and frames[1] == ICANHAZ:
                subtree = frames[2] if len(frames) == 3 else b""
                count = 0
                for key, msg in list(table.items()):
                    if key.startswith(subtree):
                        snapshot.send_multipart([identity] + msg.encode())
                        count += 1
                body = subtree if args.kthxbai_body == "subtree" else b""
                snapshot.send_multipart([identity] + KvMsg(KTHXBAI, sequence, body=body).encode())
                log("snapshot of %d keys to %s (subtree '%s', sequence %d)" % (
                    count, show_identity(identity), text(subtree), sequence))
            else:
                log("bad request: %s" % show_frames(frames))

        if collector in ready:
            frames = collector.recv_multipart()
            if args.verbose:
                log("collector received %s" % show_frames(frames))
            try:
                msg = KvMsg.decode(frames)
            except Invalid as why:
                log("invalid message (%s): %s" % (why, show_frames(frames)))
                msg = None
            if msg is not None:
                sequence += 1
                msg.sequence = sequence
                publisher.send_multipart(msg.encode())
                ttl = leading_int(msg.get_prop("ttl"))
                if ttl:
                    msg.set_prop("ttl", str(epoch_ms() + ttl * 1000))
                msg.store(table)
                log("%s #%d %s" % ("delete" if msg.is_delete else "update", sequence, text(msg.key)))

        if now_ms() >= flush_at:
            flush_at = now_ms() + args.flush_interval
            now = epoch_ms()
            for key, msg in list(table.items()):
                expiry = leading_int(msg.get_prop("ttl"))
                if expiry and now >= expiry:
                    sequence += 1
                    msg.sequence = sequence
                    msg.body = b""
                    publisher.send_multipart(msg.encode())
                    del table[key]
                    log("expired #%d %s" % (sequence, text(key)))

        if now_ms() >= hugz_at:
            hugz_at = now_ms() + args.hugz_interval
            publisher.send_multipart(KvMsg(HUGZ, sequence).encode())


if __name__ == "__main__":
    run(main, log)
