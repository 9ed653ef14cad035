"""clientside.py REGION PIPE, e.g. ``python clientside.py mempool pipe1``.

Receives 100 packets from PIPE and prints each, from this package's serverside.py or the
Rust crate's serverside example alike.
"""

import sys

import shmval

USAGE = "usage: clientside.py REGION PIPE\n  e.g. clientside.py mempool pipe2"


def main(argv):
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    region, pipe = argv
    with shmval.ClientSide(region, pipe) as client:
        for _ in range(100):
            packet = client.pipe.deq()
            print(packet.to_python())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except shmval.Error as e:
        print(f"clientside.py: {e}", file=sys.stderr)
        sys.exit(1)
