"""torchzip.py - read and write PyTorch zip checkpoints without torch, executing nothing.

A torch.save file (PyTorch >= 1.6) is a zip archive:
    <prefix>/data.pkl      the pickled object (a state dict: name -> tensor)
    <prefix>/data/<key>    one raw storage per key (little-endian unless <prefix>/byteorder says big)
    <prefix>/version       format version ("3")
A TorchScript archive (torch.jit.save, e.g. OpenAI's released ViT-*.pt) has the same
data.pkl + data/ layout, plus code/ and constants.pkl; its data.pkl holds the module tree
as objects of `__torch__.*` classes whose state (attributes, parameters, submodules) is
set by the pickle BUILD opcode.

Unpickling is restricted: find_class hands out only inert stand-ins for the few globals
that rebuild tensors (and, in TorchScript archives, a placeholder class for `__torch__.*`
that just keeps its state dict). Any other global is refused before anything runs.

read_checkpoint(path) -> ({dotted name: Tensor}, kind) with kind "state_dict" or "torchscript".
StateDictWriter / write_state_dict write a torch.save-style archive (protocol 2 pickle,
OrderedDict of _rebuild_tensor_v2 calls on FloatStorages), as torch itself reads it.
"""

import _compat_pickle
import collections
import io
import pickle
import struct
import zipfile
import zlib

from tensor_data import DTYPE_SIZES, FormatError, Tensor, contiguous_strides, numel_of

# torch storage class names -> our dtype names.
STORAGE_DTYPES = {
    "FloatStorage": "f32", "HalfStorage": "f16", "BFloat16Storage": "bf16",
    "DoubleStorage": "f64", "LongStorage": "i64", "IntStorage": "i32", "ShortStorage": "i16",
    "CharStorage": "i8", "ByteStorage": "u8", "BoolStorage": "bool", "UntypedStorage": "u8",
}

MAX_PICKLE_BYTES = 1 << 30
# The first bytes of a legacy (PyTorch < 1.6) torch.save file: a pickled magic number.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class StorageType:
    """Stand-in for torch.FloatStorage & co.: only names a dtype; cannot be called."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class ZipStorage:
    """One storage: the zip entry <prefix>/data/<key>, numel elements of dtype."""

    def __init__(self, archive, entry, dtype, numel, byteorder, label):
        self.archive = archive
        self.entry = entry
        self.dtype = dtype
        self.numel = numel
        self.byteorder = byteorder
        self.label = label

    def read(self, byte_start, n_bytes):
        try:
            with self.archive.open(self.entry) as f:
                if byte_start:
                    f.seek(byte_start)
                data = f.read(n_bytes)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
            raise FormatError("%s: cannot read %s: %s" % (self.label, self.entry, e))
        if len(data) != n_bytes:
            raise FormatError("%s: %s is truncated" % (self.label, self.entry))
        return data


class TorchScriptObject:
    """Placeholder for a `__torch__.*` class: records the state BUILD gives it, runs nothing."""
    type_name = "__torch__"

    def __init__(self, *args, **kwargs):
        self.state = None

    def __setstate__(self, state):
        self.state = state


# Markers for torch.Tensor / torch.nn.Parameter as arguments of _rebuild_from_type_v2.
class _TypeMarker:
    def __init__(self, name):
        self.name = name


_TENSOR_TYPES = {"torch.Tensor": _TypeMarker("torch.Tensor"),
                 "torch.nn.parameter.Parameter": _TypeMarker("torch.nn.parameter.Parameter")}


def _check_view(storage, offset, size, stride):
    ok = (isinstance(storage, ZipStorage) and isinstance(offset, int) and offset >= 0
          and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
          and len(size) == len(stride) and len(size) <= 8
          and all(isinstance(d, int) and d >= 0 for d in size)
          and all(isinstance(s, int) and s >= 0 for s in stride))
    if not ok:
        raise FormatError("malformed tensor record in pickle")
    tensor = Tensor(storage, offset, size, stride)
    if tensor.numel and offset + tensor.extent() > storage.numel:
        raise FormatError("%s: tensor view %s (offset %d, strides %s) runs past its storage of %d elements"
                          % (storage.label, tuple(size), offset, tuple(stride), storage.numel))
    return tensor


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return _check_view(storage, offset, size, stride)


def _rebuild_tensor(storage, offset, size, stride):
    return _check_view(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, Tensor):
        raise FormatError("malformed parameter record in pickle")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or new_type not in _TENSOR_TYPES.values():
        raise FormatError("unsupported tensor subclass record in pickle")
    return func(*args)


def _passthrough(value, *unused):
    return value


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TENSOR_TYPES["torch.Tensor"],
    ("torch.nn.parameter", "Parameter"): _TENSOR_TYPES["torch.nn.parameter.Parameter"],
    ("torch", "Size"): tuple,
    # TorchScript pickles wrap some values in these; they only return their argument.
    ("torch.jit._pickle", "restore_type_tag"): _passthrough,
    ("torch.jit._pickle", "build_intlist"): _passthrough,
    ("torch.jit._pickle", "build_doublelist"): _passthrough,
    ("torch.jit._pickle", "build_boollist"): _passthrough,
    ("torch.jit._pickle", "build_tensorlist"): _passthrough,
}
for _name in STORAGE_DTYPES:
    _ALLOWED[("torch", _name)] = StorageType(_name)


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data, archive, prefix, byteorder, label, torchscript):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.byteorder = byteorder
        self.label = label
        self.torchscript = torchscript
        self.storages = {}
        self.placeholders = {}

    def find_class(self, module, name):
        target = _ALLOWED.get((module, name))
        if target is not None:
            return target
        if self.torchscript and (module == "__torch__" or module.startswith("__torch__.")):
            qualified = module + "." + name
            cls = self.placeholders.get(qualified)
            if cls is None:
                cls = type("TorchScript_" + name, (TorchScriptObject,), {"type_name": qualified})
                self.placeholders[qualified] = cls
            return cls
        # Name the global as Python 3 would resolve it (protocol 2 writes builtins as __builtin__).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        raise FormatError("%s: refusing to load: pickle references %s.%s (only tensor data is allowed)"
                          % (self.label, module, name))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise FormatError("%s: unsupported persistent id in pickle" % self.label)
        _, storage_type, key, _location, numel = pid
        cached = self.storages.get(key)
        if cached is not None:
            return cached
        entry = "%s/data/%s" % (self.prefix, key)
        try:
            info = self.archive.getinfo(entry)
        except KeyError:
            raise FormatError("%s: storage %s is missing from the archive" % (self.label, entry))
        if info.file_size < numel * DTYPE_SIZES[storage_type.dtype]:
            raise FormatError("%s: storage %s holds %d bytes, less than its %d %s elements"
                              % (self.label, entry, info.file_size, numel, storage_type.dtype))
        storage = ZipStorage(self.archive, entry, storage_type.dtype, numel, self.byteorder, self.label)
        self.storages[key] = storage
        return storage


def open_archive(path):
    """Open a torch zip archive; returns (ZipFile, prefix). Clear errors for other files."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            raise FormatError("%s: legacy (PyTorch < 1.6) torch.save format is not supported; "
                              "re-save it with a newer torch" % path)
        raise FormatError("%s: not a zip archive (truncated, or not a PyTorch checkpoint)" % path)
    except (OSError, ValueError, EOFError) as e:
        raise FormatError("%s: cannot read zip archive: %s" % (path, e))
    pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        archive.close()
        raise FormatError("%s: not a PyTorch checkpoint (expected one <name>/data.pkl in the zip, found %d)"
                          % (path, len(pickles)))
    return archive, pickles[0][:-len("/data.pkl")]


def load_pickle(path):
    """Unpickle <prefix>/data.pkl of a torch archive. Returns (root object, archive, is_torchscript);
    the archive stays open because the tensors read from it lazily."""
    archive, prefix = open_archive(path)
    try:
        names = archive.namelist()
        torchscript = any(n.startswith(prefix + "/code/") for n in names) or (prefix + "/constants.pkl") in names
        byteorder = "little"
        if prefix + "/byteorder" in names:
            byteorder = archive.read(prefix + "/byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise FormatError("%s: unknown byteorder %r" % (path, byteorder))
        info = archive.getinfo(prefix + "/data.pkl")
        if info.file_size > MAX_PICKLE_BYTES:
            raise FormatError("%s: data.pkl is implausibly large (%d bytes)" % (path, info.file_size))
        data = archive.read(info)
        unpickler = RestrictedUnpickler(data, archive, prefix, byteorder, path, torchscript)
        try:
            root = unpickler.load()
        except FormatError:
            raise
        except RecursionError:
            raise FormatError("%s: data.pkl nests too deeply" % path)
        except Exception as e:  # any malformed pickle: report, never crash
            raise FormatError("%s: cannot unpickle data.pkl: %s: %s" % (path, type(e).__name__, e))
        return root, archive, torchscript
    except FormatError:
        archive.close()
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        archive.close()
        raise FormatError("%s: cannot read the archive: %s" % (path, e))


def _collect_torchscript(obj, prefix, out, seen, depth=0):
    """Walk a TorchScript module tree: tensors under dotted attribute paths (as state_dict() names)."""
    if depth > 64 or id(obj) in seen:
        return
    seen.add(id(obj))
    state = obj.state
    if not isinstance(state, dict):
        return
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, Tensor):
            out.setdefault(prefix + key, value)
        elif isinstance(value, TorchScriptObject):
            _collect_torchscript(value, prefix + key + ".", out, seen, depth + 1)


def read_checkpoint(path):
    """Tensors of a torch checkpoint, by state-dict name. Returns (tensors, kind, archive)."""
    root, archive, torchscript = load_pickle(path)
    tensors = collections.OrderedDict()
    if isinstance(root, TorchScriptObject):
        _collect_torchscript(root, "", tensors, set())
        return tensors, "torchscript", archive
    if isinstance(root, dict) and isinstance(root.get("state_dict"), dict):
        root = root["state_dict"]  # an OpenCLIP training checkpoint
    if not isinstance(root, dict):
        archive.close()
        raise FormatError("%s: the pickle holds a %s, not a state dict" % (path, type(root).__name__))
    for key, value in root.items():
        if isinstance(key, str) and isinstance(value, Tensor):
            name = key[len("module."):] if key.startswith("module.") else key
            tensors[name] = value
    return tensors, "state_dict", archive


# --- writer -----------------------------------------------------------------------------

def _pickle_str(s):
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def _pickle_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -(1 << 31) <= v < (1 << 31):
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _pickle_int_tuple(values):
    return b"(" + b"".join(_pickle_int(v) for v in values) + b"t"


def state_dict_pickle(entries):
    """Protocol-2 pickle of OrderedDict(name -> tensor), as torch.save writes it.
    entries: [(name, shape, storage key)], f32 contiguous tensors."""
    out = [b"\x80\x02", b"ccollections\nOrderedDict\n", b")R", b"("]
    for name, shape, key in entries:
        numel = 1
        for d in shape:
            numel *= d
        out.append(_pickle_str(name))
        out.append(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.append(b"(" + _pickle_str("storage") + b"ctorch\nFloatStorage\n" + _pickle_str(key)
                   + _pickle_str("cpu") + _pickle_int(numel) + b"tQ")
        out.append(_pickle_int(0) + _pickle_int_tuple(shape) + _pickle_int_tuple(contiguous_strides(shape)))
        out.append(b"\x89ccollections\nOrderedDict\n)Rt" + b"R")
    out.append(b"u.")
    return b"".join(out)


def _aligned_info(zf, name, alignment=64):
    """A ZipInfo whose data starts at a multiple of `alignment` (as torch.save does), padded
    with an extra field."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    offset = zf.fp.tell() + 30 + len(name.encode("utf-8"))
    pad = (-(offset + 4)) % alignment
    info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # id "FB", like torch
    return info


class StateDictWriter:
    """Streams a torch.save-style zip: StateDictWriter(path, [(name, shape)]), then add()
    each tensor's f32 little-endian bytes in that order, then close()."""

    def __init__(self, path, entries, prefix="archive"):
        self.entries = [(name, tuple(shape), str(k)) for k, (name, shape) in enumerate(entries)]
        self.prefix = prefix
        self.next = 0
        self.zf = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED)
        self._write("data.pkl", state_dict_pickle(self.entries))
        self._write("byteorder", b"little")

    def _write(self, name, data):
        self.zf.writestr(_aligned_info(self.zf, self.prefix + "/" + name), data)

    def add(self, data):
        name, shape, key = self.entries[self.next]
        assert len(data) == 4 * numel_of(shape), name
        self._write("data/" + key, data)
        self.next += 1

    def close(self):
        assert self.next == len(self.entries), "not every tensor was written"
        self._write("version", b"3\n")
        self.zf.close()


def write_state_dict(path, tensors, prefix="archive"):
    """Write {name: (shape, f32 little-endian bytes)} as a torch.save zip checkpoint."""
    writer = StateDictWriter(path, [(name, shape) for name, (shape, _) in tensors.items()], prefix)
    for shape, data in tensors.values():
        writer.add(data)
    writer.close()
