"""serverside.py REGION BYTES PIPE CAPACITY [MAX_BYTES], e.g.
``python serverside.py mempool 1000000 pipe1 4``.

Creates the shared pool (it owns the ShmMain) and a pipe in it, sends 100 packets
``{'sequence_number': n, 'bi': 10**47, 'bu': 10**47}``, then waits until every reader is
done before it takes the pool's name away. Start it before or after the readers, which
may be this package's clientside.py or the Rust crate's clientside example.
"""

import sys

import shmval

USAGE = "usage: serverside.py REGION BYTES PIPE CAPACITY [MAX_BYTES]\n  e.g. serverside.py mempool 1000000 pipe1 4"


def main(argv):
    if len(argv) not in (4, 5):
        print(USAGE, file=sys.stderr)
        return 2
    region, pipe = argv[0], argv[2]
    try:
        size, capacity = int(argv[1]), int(argv[3])
        max_bytes = int(argv[4]) if len(argv) == 5 else None
    except ValueError:
        print(f"serverside.py: BYTES, CAPACITY and MAX_BYTES must be whole numbers\n{USAGE}", file=sys.stderr)
        return 2
    with shmval.ShmMain(region, size, max_bytes=max_bytes) as main:
        with shmval.ServerSide(region, pipe, capacity) as server:
            for n in range(100):
                server.pipe.enq({"sequence_number": n, "bi": 10**47, "bu": 10**47})
        # What was sent stays in the pipe for readers not yet started: keep the region's
        # name until every packet has been taken and the readers are done.
        if not main.wait_idle(600.0):
            print("serverside.py: readers still attached after 10 minutes; leaving", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except shmval.Error as e:
        print(f"serverside.py: {e}", file=sys.stderr)
        sys.exit(1)
