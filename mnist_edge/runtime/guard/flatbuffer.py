"""A bounds-checked reader of TFLite flatbuffers, and the field slots of the tables we read.

The layout: a table starts with an int32 offset back to its vtable (u16 vtable size, u16 table
size, then one u16 offset per field, 0 = absent); references (tables, vectors, strings) are
uint32 offsets from where they are stored; a vector is a uint32 length then its elements. Every
read is checked against the file's size, so a damaged file raises
:class:`TFLiteStructureError`, never an IndexError or a read outside the bytes. Field slots are
``4 + 2 * field id`` from TensorFlow's ``schema.fbs``. Used by the structural check
(:mod:`.tflite_check`, :mod:`.tflite_options`) and by the readers that trust only what it passed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


class TFLiteStructureError(ValueError):
    """The bytes are not a TFLite model this runtime will hand to LiteRT (the reason is the message)."""


# Field slots (4 + 2 * id) of the tables we read.
_MODEL_VERSION, _MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 4, 6, 8, 12
_MODEL_METADATA_BUFFER, _MODEL_METADATA, _MODEL_SIGNATURES = 14, 16, 18
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 4, 6, 8, 10
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_QUANT, _T_IS_VARIABLE, _T_SPARSITY, _T_SIGNATURE = 4, 6, 8, 12, 14, 16, 18
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS_TYPE, _OP_OPTIONS, _OP_INTERMEDIATES = 4, 6, 8, 10, 12, 20
_OP_LARGE_CUSTOM_OFFSET, _OP_LARGE_CUSTOM_SIZE = 22, 24
_OC_DEPRECATED_CODE, _OC_BUILTIN_CODE = 4, 10
_BUF_DATA, _BUF_OFFSET, _BUF_SIZE = 4, 6, 8
_Q_SCALE, _Q_ZERO_POINT, _Q_DIMENSION = 8, 10, 16
_SIG_INPUTS, _SIG_OUTPUTS, _SIG_SUBGRAPH = 4, 6, 10
_TMAP_TENSOR = 6
_META_BUFFER = 6

_SCALARS = {fmt: struct.Struct("<" + fmt) for fmt in "bBhHiIqQf"}


class _Buffer:
    """The file's bytes with bounds-checked reads of flatbuffer primitives."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def scalar(self, pos: int, fmt: str) -> int | float:
        unpacker = _SCALARS[fmt]
        if pos < 0 or pos + unpacker.size > self.size:
            raise TFLiteStructureError(f"a field at byte {pos} lies outside the {self.size}-byte file")
        return unpacker.unpack_from(self.data, pos)[0]  # type: ignore[no-any-return]

    def follow(self, pos: int) -> int:
        """The absolute position a uoffset stored at ``pos`` refers to."""
        target = pos + int(self.scalar(pos, "I"))
        if target >= self.size:
            raise TFLiteStructureError(f"an offset at byte {pos} points past the end of the file")
        return target

    def table(self, pos: int) -> _Table:
        vtable = pos - int(self.scalar(pos, "i"))
        vsize = int(self.scalar(vtable, "H"))
        tsize = int(self.scalar(vtable + 2, "H"))
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size or tsize < 4 or pos + tsize > self.size:
            raise TFLiteStructureError(f"the table at byte {pos} has a corrupt vtable")
        return _Table(self, pos, vtable, vsize, tsize)

    def vector(self, pos: int, element_size: int, limit: int, what: str) -> tuple[int, int]:
        """(start, length) of the vector at ``pos``, its elements inside the file."""
        length = int(self.scalar(pos, "I"))
        if length > limit:
            raise TFLiteStructureError(f"{what} has {length} entries (limit {limit})")
        start = pos + 4
        if start + length * element_size > self.size:
            raise TFLiteStructureError(f"{what} ({length} entries) runs past the end of the file")
        return start, length


@dataclass(frozen=True)
class _Table:
    buf: _Buffer
    pos: int
    vtable: int
    vsize: int
    tsize: int

    def _field(self, slot: int) -> int | None:
        if slot >= self.vsize:
            return None
        offset = int(self.buf.scalar(self.vtable + slot, "H"))
        if offset == 0:
            return None
        if offset >= self.tsize:
            raise TFLiteStructureError(f"a field of the table at byte {self.pos} lies outside the table")
        return self.pos + offset

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        pos = self._field(slot)
        return default if pos is None else int(self.buf.scalar(pos, fmt))

    def has(self, slot: int) -> bool:
        return self._field(slot) is not None

    def table(self, slot: int) -> _Table | None:
        pos = self._field(slot)
        return None if pos is None else self.buf.table(self.buf.follow(pos))

    def vector(self, slot: int, element_size: int, limit: int, what: str) -> tuple[int, int] | None:
        pos = self._field(slot)
        return None if pos is None else self.buf.vector(self.buf.follow(pos), element_size, limit, what)

    def scalars(self, slot: int, fmt: str, limit: int, what: str) -> list[int | float]:
        size = _SCALARS[fmt].size
        found = self.vector(slot, size, limit, what)
        if found is None:
            return []
        start, length = found
        return list(struct.unpack_from(f"<{length}{fmt}", self.buf.data, start))

    def tables(self, slot: int, limit: int, what: str) -> list[_Table]:
        found = self.vector(slot, 4, limit, what)
        if found is None:
            return []
        start, length = found
        return [self.buf.table(self.buf.follow(start + 4 * i)) for i in range(length)]

    def byte_length(self, slot: int, what: str) -> int:
        """Length of a ubyte vector (or string) field, 0 if absent; its bytes must lie in the file."""
        found = self.vector(slot, 1, self.buf.size, what)
        return 0 if found is None else found[1]
