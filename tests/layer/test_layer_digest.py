"""HashingWriter and chain IDs (OCI image spec: ChainID(L0..Ln) =
sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)))."""

from __future__ import annotations

import hashlib
import io

import pytest

from dockyard.errors import LayerError
from dockyard.layer import HashingWriter, chain_id, chain_ids

A, B, C = ("sha256:" + ch * 64 for ch in "abc")
# Computed once with sha256sum: printf '%s' "$A $B" | sha256sum
AB = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
ABC = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"


def test_chain_id_of_one_layer_is_its_diff_id():
    assert chain_id([A]) == A


def test_chain_id_of_a_stack():
    assert chain_id([A, B]) == AB
    assert chain_id([A, B, C]) == ABC
    assert chain_ids([A, B, C]) == [A, AB, ABC]
    assert chain_id([B, A]) != AB  # order matters


@pytest.mark.parametrize("bad", [[], ["sha256:abc"], ["md5:" + "a" * 64], [A, "b" * 64]])
def test_chain_id_rejects_bad_input(bad):
    with pytest.raises(LayerError):
        chain_id(bad)


def test_hashing_writer_counts_and_hashes():
    out = io.BytesIO()
    hw = HashingWriter(out)
    for chunk in (b"abc", bytearray(b"def"), memoryview(b"0123456789")[2:5]):
        hw.write(chunk)
    assert out.getvalue() == b"abcdef234"
    assert hw.size == 9
    assert hw.digest == "sha256:" + hashlib.sha256(b"abcdef234").hexdigest()


class _Trickle(io.RawIOBase):
    """A raw file that takes at most 3 bytes a call."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        b = bytes(b)[:3]
        self.data += b
        return len(b)


def test_hashing_writer_completes_partial_writes():
    raw = _Trickle()
    hw = HashingWriter(raw)  # type: ignore[arg-type]
    assert hw.write(b"0123456789") == 10
    assert bytes(raw.data) == b"0123456789"
