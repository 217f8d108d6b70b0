"""Port leases: unique while held, returned on release, ports held by others skipped, exhaustion named."""

import socket

import pytest

from helpers.serve import ports
from mcpsim.errors import PortsExhausted
from mcpsim.proc import PortAllocator, parse_port_range


def test_leases_are_unique_until_released_and_round_robin():
    low, high = ports(300, 4)
    allocator = PortAllocator(low, high)
    leased = [allocator.lease() for _ in range(4)]
    assert sorted(leased) == [low, low + 1, low + 2, low + 3]
    with pytest.raises(PortsExhausted, match=f"no free port in {low}-{high}: 4 leased"):
        allocator.lease()
    allocator.release(low + 1)
    assert allocator.lease() == low + 1
    allocator.release(low)
    allocator.release(low + 2)
    assert allocator.lease() == low + 2  # the next in turn, not the most recently freed


def test_ports_bound_by_other_programs_are_skipped():
    low, high = ports(310, 2)
    with socket.socket() as held:
        held.bind(("127.0.0.1", low))
        held.listen()
        allocator = PortAllocator(low, high)
        assert allocator.lease() == high
        with pytest.raises(PortsExhausted, match="1 leased to instances, 1 held by other programs"):
            allocator.lease()


@pytest.mark.parametrize("text", ["10-5", "abc", "1-70000", "0-10", "100"])
def test_bad_port_ranges_are_refused(text):
    with pytest.raises(ValueError):
        parse_port_range(text)


def test_port_range_parses():
    assert parse_port_range("10000-11000") == (10000, 11000)
