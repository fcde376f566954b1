//! A restricted reader of the pickle inside a PyTorch checkpoint (`data.pkl`). It never executes
//! anything: it interprets the few opcodes a tensor state dict needs over a closed list of globals,
//! and "calls" only the allowed ones symbolically, building tensor descriptors (storage, dtype,
//! offset, size, stride) instead of objects.
//!
//! # What is accepted
//! - Opcodes: `PROTO`, `FRAME`, `STOP`, `MARK`, `POP`, `POP_MARK`, `DUP`, `NONE`, `NEWTRUE`,
//!   `NEWFALSE`, `BININT`, `BININT1`, `BININT2`, `LONG1`, `BINFLOAT`, `BINUNICODE`,
//!   `SHORT_BINUNICODE`, `BINUNICODE8`, `BINSTRING`, `SHORT_BINSTRING`, `BINBYTES`,
//!   `SHORT_BINBYTES`, `BINBYTES8`, `EMPTY_TUPLE`, `TUPLE`, `TUPLE1`–`TUPLE3`, `EMPTY_LIST`,
//!   `LIST`, `APPEND`, `APPENDS`, `EMPTY_DICT`, `DICT`, `SETITEM`, `SETITEMS`, `BINPUT`,
//!   `LONG_BINPUT`, `MEMOIZE`, `BINGET`, `LONG_BINGET`, `GLOBAL`, `STACK_GLOBAL`, `REDUCE`,
//!   `BUILD`, `BINPERSID`.
//! - Globals ([`ALLOWED_GLOBALS`]): `collections.OrderedDict`; `torch._utils._rebuild_tensor_v2`,
//!   `_rebuild_tensor_v3`, `_rebuild_parameter`, `_rebuild_parameter_with_state`; the storage
//!   classes `torch.FloatStorage` … `torch.BoolStorage` and `torch.UntypedStorage`; dtype objects
//!   such as `torch.float32`; `torch.device`.
//! - `REDUCE` only on those callables, with the arguments `torch.save` writes: `OrderedDict()`
//!   without arguments, the tensor rebuilders with a storage, integer offset/size/stride, no backward
//!   hooks and no tensor metadata, `torch.device(str[, int])`.
//! - `BINPERSID` only on `('storage', <storage class>, key, location, numel)`, as `torch.save`
//!   writes it; `BUILD` only on dicts (the attributes of an `OrderedDict`, which are dropped).
//!
//! # What is refused
//! Every other global (`os.system`, `builtins.eval`, `posix.system`, `subprocess.Popen`, any other
//! `torch.*`), however its name was built (`STACK_GLOBAL` takes literal strings only and checks the
//! resolved name); `REDUCE` on anything else; every other opcode, among them `INST`, `OBJ`, `NEWOBJ`,
//! `NEWOBJ_EX`, `EXT1/2/4`, the text `PERSID` and the protocol-0 text opcodes. Errors carry the byte
//! offset of the opcode.
//!
//! # Bounds
//! Every opcode consumes at least one byte and does work proportional to the items it takes off the
//! stack, which earlier opcodes pushed, so a pickle of at most [`MAX_PICKLE_BYTES`] is read in
//! linear time. Declared lengths are checked against the bytes left before anything is allocated.
//! Objects, stack, container items, memo entries and mark depth are capped ([`MAX_OBJECTS`],
//! [`MAX_STACK`], [`MAX_ITEMS`], [`MAX_MEMO`], [`MAX_MARKS`]); containers are never copied (the memo
//! shares them by index), and the final walk that names tensors is capped in depth ([`MAX_DEPTH`],
//! which also stops cycles), visits ([`MAX_VISITS`], against shared sub-trees) and name bytes.

use std::collections::HashMap;

use crate::dtype::DType;

/// Largest pickle accepted (a state dict of 100 000 tensors takes about 20 MB).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// Most objects a pickle may create.
pub const MAX_OBJECTS: usize = 1 << 22;
/// Deepest stack.
pub const MAX_STACK: usize = 1 << 22;
/// Most items all containers may hold together.
pub const MAX_ITEMS: usize = 1 << 24;
/// Most memo entries.
pub const MAX_MEMO: usize = 1 << 22;
/// Most open `MARK`s at once.
pub const MAX_MARKS: usize = 1024;
/// Deepest nesting of containers around a tensor.
pub const MAX_DEPTH: usize = 64;
/// Most container entries visited when naming tensors.
pub const MAX_VISITS: usize = 1 << 22;
/// Longest tensor name.
pub const MAX_NAME_BYTES: usize = 1 << 16;
/// Most bytes of all tensor names together.
pub const MAX_NAMES_TOTAL: usize = 64 << 20;
/// Most dimensions of a tensor.
pub const MAX_DIMS: usize = 64;

/// The globals a checkpoint's pickle may name, as `module.name` (plus `torch.<dtype>` objects such
/// as `torch.float32`, listed by [`torch_dtype`]).
pub const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.device",
    "torch.UntypedStorage",
    "torch.storage.UntypedStorage",
    "torch.DoubleStorage",
    "torch.FloatStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
];

/// Element type of a storage, as its class says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    /// A typed storage (`torch.FloatStorage`, …): numel counts elements of this dtype.
    Typed(DType),
    /// `torch.UntypedStorage`: numel counts bytes; the tensor gives the dtype.
    Untyped,
    /// A storage class of a dtype modelkin does not decode (complex, quantized); its torch name.
    Unreadable(&'static str),
}

/// A storage named by a persistent id: the bytes of archive entry `data/<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The key (the entry's file name under `data/`).
    pub key: String,
    /// Element type.
    pub kind: StorageType,
    /// Elements (bytes for an untyped storage).
    pub numel: u64,
}

impl Storage {
    /// Bytes the storage declares (checked; `None` on overflow or an unreadable type).
    pub fn nbytes(&self) -> Option<u64> {
        match self.kind {
            StorageType::Typed(d) => self.numel.checked_mul(d.size() as u64),
            StorageType::Untyped => Some(self.numel),
            StorageType::Unreadable(_) => None,
        }
    }
}

/// A tensor as the pickle rebuilds it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// Index into [`Loaded::storages`].
    pub storage: usize,
    /// Element type.
    pub dtype: DType,
    /// Offset of the first element from the start of the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub size: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// What a pickle holds: the storages it names and its tensors, named by their keys.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Distinct storages, in order of first appearance.
    pub storages: Vec<Storage>,
    /// Tensors in pickle order, named by their dict keys joined with '.' (list items by index); a
    /// pickle that is a bare tensor gives one tensor named "".
    pub tensors: Vec<(String, TensorRef)>,
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode concerned.
    pub offset: usize,
    /// `true` when the pickle asks for something modelkin never does (a global or opcode outside
    /// the allow-list); `false` when it is malformed or exceeds a bound.
    pub refused: bool,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle offset {}: {}", self.offset, self.reason)
    }
}

/// Reads `data` (a whole pickle) without executing it.
pub fn load(data: &[u8]) -> Result<Loaded, PickleError> {
    let mut m = Machine::new(data);
    let root = m.run()?;
    let tensors = m.flatten(root)?;
    Ok(Loaded {
        storages: m.storages,
        tensors,
    })
}

/// The dtype of a `torch.<name>` dtype object: `Some(Ok)` when modelkin decodes it, `Some(Err)`
/// for a torch dtype it does not, `None` when `name` is no dtype.
pub fn torch_dtype(name: &str) -> Option<Result<DType, &'static str>> {
    Some(Ok(match name {
        "float64" => DType::F64,
        "float32" => DType::F32,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "float8_e4m3fn" => DType::F8_E4M3,
        "float8_e5m2" => DType::F8_E5M2,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "int16" => DType::I16,
        "int8" => DType::I8,
        "uint64" => DType::U64,
        "uint32" => DType::U32,
        "uint16" => DType::U16,
        "uint8" => DType::U8,
        "bool" => DType::BOOL,
        _ => {
            return UNREADABLE_DTYPES
                .iter()
                .find(|&&n| n == name)
                .map(|&n| Err(n))
        }
    }))
}

const UNREADABLE_DTYPES: &[&str] = &[
    "complex32",
    "complex64",
    "complex128",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
];

fn storage_type(name: &str) -> Option<StorageType> {
    Some(StorageType::Typed(match name {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::BOOL,
        "UntypedStorage" => return Some(StorageType::Untyped),
        "ComplexFloatStorage" => return Some(StorageType::Unreadable("torch.ComplexFloatStorage")),
        "ComplexDoubleStorage" => {
            return Some(StorageType::Unreadable("torch.ComplexDoubleStorage"))
        }
        "QInt8Storage" => return Some(StorageType::Unreadable("torch.QInt8Storage")),
        "QUInt8Storage" => return Some(StorageType::Unreadable("torch.QUInt8Storage")),
        "QInt32Storage" => return Some(StorageType::Unreadable("torch.QInt32Storage")),
        _ => return None,
    }))
}

/// A global the pickle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    Device,
    Storage(StorageType),
    Dtype(Result<DType, &'static str>),
}

fn resolve(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch", "device") => Global::Device,
        ("torch.storage", "UntypedStorage") => Global::Storage(StorageType::Untyped),
        ("torch", n) => match (storage_type(n), torch_dtype(n)) {
            (Some(s), _) => Global::Storage(s),
            (None, Some(d)) => Global::Dtype(d),
            (None, None) => return None,
        },
        _ => return None,
    })
}

fn global_name(g: Global) -> String {
    match g {
        Global::OrderedDict => "collections.OrderedDict".into(),
        Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
        Global::RebuildTensorV3 => "torch._utils._rebuild_tensor_v3".into(),
        Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
        Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state".into(),
        Global::Device => "torch.device".into(),
        Global::Storage(StorageType::Typed(d)) => format!("the {d} storage class"),
        Global::Storage(StorageType::Untyped) => "torch.UntypedStorage".into(),
        Global::Storage(StorageType::Unreadable(n)) => n.into(),
        Global::Dtype(Ok(d)) => format!("the {d} dtype object"),
        Global::Dtype(Err(n)) => format!("torch.{n}"),
    }
}

type Id = u32;

/// A value on the pickle machine's stack, in the memo or in a container.
#[derive(Debug, Clone)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit 64 bits (never a size or an offset).
    BigInt,
    Float,
    Str(Box<str>),
    Bytes,
    Tuple(Box<[Id]>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(usize),
    Tensor(Box<TensorRef>),
    Device,
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt => "int",
            Obj::Float => "float",
            Obj::Str(_) => "str",
            Obj::Bytes => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
            Obj::Device => "torch.device",
        }
    }
}

const NONE: Id = 0;
const TRUE: Id = 1;
const FALSE: Id = 2;

const REFUSAL_HINT: &str = "modelkin never runs pickled code; convert the checkpoint to \
                            safetensors if it holds more than tensors";

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being interpreted.
    at: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    items: usize,
    storages: Vec<Storage>,
    storage_keys: HashMap<String, usize>,
}

type R<T> = Result<T, PickleError>;

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            at: 0,
            objs: vec![Obj::None, Obj::Bool(true), Obj::Bool(false)],
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            items: 0,
            storages: Vec::new(),
            storage_keys: HashMap::new(),
        }
    }

    fn bad<T>(&self, reason: impl Into<String>) -> R<T> {
        Err(PickleError {
            offset: self.at,
            refused: false,
            reason: reason.into(),
        })
    }

    fn refuse<T>(&self, reason: impl Into<String>) -> R<T> {
        Err(PickleError {
            offset: self.at,
            refused: true,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.bad(format!(
                "opcode needs {n} bytes but the pickle has {left} left (truncated, or a bogus length)"
            ));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn new_obj(&mut self, o: Obj) -> R<Id> {
        if self.objs.len() >= MAX_OBJECTS {
            return self.bad(format!(
                "the pickle creates more than {MAX_OBJECTS} objects"
            ));
        }
        self.objs.push(o);
        Ok((self.objs.len() - 1) as Id)
    }

    fn push(&mut self, id: Id) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return self.bad(format!("the stack grows past {MAX_STACK} items"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, o: Obj) -> R<()> {
        let id = self.new_obj(o)?;
        self.push(id)
    }

    fn pop(&mut self) -> R<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.bad("stack underflow");
        }
        Ok(self.stack.pop().unwrap_or(NONE))
    }

    fn top(&self) -> R<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => self.bad("stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> R<Vec<Id>> {
        let Some(mark) = self.marks.pop() else {
            return self.bad("no MARK to pop to");
        };
        Ok(self.stack.split_off(mark))
    }

    fn count_items(&mut self, n: usize) -> R<()> {
        self.items += n;
        if self.items > MAX_ITEMS {
            return self.bad(format!(
                "containers hold more than {MAX_ITEMS} items together"
            ));
        }
        Ok(())
    }

    fn string(&mut self, n: u64) -> R<()> {
        let raw = self.take(n)?;
        let Ok(s) = std::str::from_utf8(raw) else {
            return self.bad("string is not valid UTF-8");
        };
        self.push_new(Obj::Str(s.into()))
    }

    fn int(&mut self, v: i64) -> R<()> {
        self.push_new(Obj::Int(v))
    }

    fn memo_put(&mut self, key: u32) -> R<()> {
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return self.bad(format!("the memo grows past {MAX_MEMO} entries"));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> R<()> {
        match self.memo.get(&key) {
            Some(&id) => self.push(id),
            None => self.bad(format!("memo entry {key} is read before it is written")),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        match resolve(module, name) {
            Some(g) => self.push_new(Obj::Global(g)),
            None => self.refuse(format!(
                "global '{module}.{name}' is not allowed: {REFUSAL_HINT} (allowed: \
                 collections.OrderedDict, the torch._utils tensor and parameter rebuilders, torch \
                 storage classes and dtypes, torch.device)"
            )),
        }
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().take(257).position(|&b| b == b'\n') else {
            return self.bad("GLOBAL operand is not a line of at most 256 bytes");
        };
        let raw = &rest[..n];
        self.pos += n + 1;
        match std::str::from_utf8(raw) {
            Ok(s) if s.bytes().all(|b| b.is_ascii_graphic()) => Ok(s),
            _ => self.refuse("GLOBAL operand is not a plain ASCII name"),
        }
    }

    fn run(&mut self) -> R<Id> {
        loop {
            self.at = self.pos;
            let Some(&op) = self.data.get(self.pos) else {
                return self.bad("the pickle ends without a STOP opcode (truncated?)");
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let [v] = self.arr::<1>()?;
                    if v > 5 {
                        return self.bad(format!("unknown pickle protocol {v}"));
                    }
                }
                0x95 => {
                    let n = u64::from_le_bytes(self.arr::<8>()?);
                    if n > (self.data.len() - self.pos) as u64 {
                        return self.bad(format!("FRAME of {n} bytes runs past the end"));
                    }
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return self.bad(format!("more than {MAX_MARKS} nested MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.push(top)?;
                }
                b'N' => self.push(NONE)?,
                0x88 => self.push(TRUE)?,
                0x89 => self.push(FALSE)?,
                b'J' => {
                    let v = i32::from_le_bytes(self.arr::<4>()?);
                    self.int(v as i64)?;
                }
                b'K' => {
                    let [v] = self.arr::<1>()?;
                    self.int(v as i64)?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr::<2>()?);
                    self.int(v as i64)?;
                }
                0x8a => {
                    let [n] = self.arr::<1>()?;
                    let raw = self.take(n as u64)?;
                    if raw.len() > 8 {
                        self.push_new(Obj::BigInt)?;
                    } else {
                        let fill = if raw.last().is_some_and(|&b| b & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        let mut b = [fill; 8];
                        b[..raw.len()].copy_from_slice(raw);
                        self.int(i64::from_le_bytes(b))?;
                    }
                }
                b'G' => {
                    self.arr::<8>()?;
                    self.push_new(Obj::Float)?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.arr::<4>()?);
                    self.string(n as u64)?;
                }
                0x8c => {
                    let [n] = self.arr::<1>()?;
                    self.string(n as u64)?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.arr::<8>()?);
                    self.string(n)?;
                }
                b'T' | b'U' => {
                    // Python 2 `str`: bytes read as Latin-1, as `encoding="latin1"` would.
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.arr::<4>()?);
                        if n < 0 {
                            return self.bad("BINSTRING with a negative length");
                        }
                        n as u64
                    } else {
                        self.arr::<1>()?[0] as u64
                    };
                    let raw = self.take(n)?;
                    let s: String = raw.iter().map(|&b| b as char).collect();
                    self.push_new(Obj::Str(s.into()))?;
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => u32::from_le_bytes(self.arr::<4>()?) as u64,
                        b'C' => self.arr::<1>()?[0] as u64,
                        _ => u64::from_le_bytes(self.arr::<8>()?),
                    };
                    self.take(n)?;
                    self.push_new(Obj::Bytes)?;
                }
                b')' => self.push_new(Obj::Tuple(Box::new([])))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.count_items(items.len())?;
                    self.push_new(Obj::Tuple(items.into_boxed_slice()))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = vec![NONE; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop()?;
                    }
                    self.count_items(n)?;
                    self.push_new(Obj::Tuple(items.into_boxed_slice()))?;
                }
                b']' => self.push_new(Obj::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.count_items(items.len())?;
                    self.push_new(Obj::List(items))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, items)?;
                }
                b'}' => self.push_new(Obj::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = self.new_obj(Obj::Dict(Vec::new()))?;
                    self.set_items(dict, items)?;
                    self.push(dict)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, items)?;
                }
                b'q' => {
                    let [k] = self.arr::<1>()?;
                    self.memo_put(k as u32)?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.arr::<4>()?);
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?;
                }
                b'h' => {
                    let [k] = self.arr::<1>()?;
                    self.memo_get(k as u32)?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.arr::<4>()?);
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.objs[module as usize], &self.objs[name as usize]) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        (m, n) => {
                            return self.refuse(format!(
                                "STACK_GLOBAL on a {} and a {}: module and name must be strings",
                                m.kind(),
                                n.kind()
                            ))
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let out = self.reduce(f, args)?;
                    self.push(out)?;
                }
                b'b' => {
                    self.pop()?;
                    let target = self.top()?;
                    if !matches!(self.objs[target as usize], Obj::Dict(_)) {
                        return self.refuse(format!(
                            "BUILD on a {}: only an OrderedDict's attributes may be set",
                            self.objs[target as usize].kind()
                        ));
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent(pid)?;
                    self.push_new(Obj::Storage(storage))?;
                }
                _ => return self.unknown(op),
            }
        }
    }

    fn unknown<T>(&self, op: u8) -> R<T> {
        let (name, what) = match op {
            b'i' => ("INST", "it calls a class named in the pickle"),
            b'o' => ("OBJ", "it calls a class taken from the stack"),
            0x81 => ("NEWOBJ", "it calls cls.__new__"),
            0x92 => ("NEWOBJ_EX", "it calls cls.__new__"),
            0x82..=0x84 => (
                "EXT1/EXT2/EXT4",
                "it names a global through the copyreg registry",
            ),
            b'P' => ("PERSID", "torch.save writes persistent ids with BINPERSID"),
            b'I' | b'L' | b'F' | b'S' | b'V' | b'g' | b'p' => {
                ("protocol-0 text opcode", "torch.save writes binary opcodes")
            }
            0x8b => ("LONG4", "torch.save never writes it"),
            0x8f..=0x91 => ("set opcode", "a state dict holds no sets"),
            0x96..=0x98 => ("buffer opcode", "torch.save never writes it"),
            _ => return self.bad(format!("unknown opcode byte 0x{op:02x}")),
        };
        self.refuse(format!(
            "opcode {name} (0x{op:02x}) is not allowed: {what}; {REFUSAL_HINT}"
        ))
    }

    fn extend_list(&mut self, list: Id, items: Vec<Id>) -> R<()> {
        self.count_items(items.len())?;
        match &mut self.objs[list as usize] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.refuse(format!("APPEND to a {kind}, not a list"))
            }
        }
    }

    fn set_items(&mut self, dict: Id, items: Vec<Id>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return self.bad("SETITEMS with an odd number of items");
        }
        self.count_items(items.len())?;
        match &mut self.objs[dict as usize] {
            Obj::Dict(v) => {
                v.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.refuse(format!("SETITEM on a {kind}, not a dict"))
            }
        }
    }

    fn obj(&self, id: Id) -> &Obj {
        &self.objs[id as usize]
    }

    fn persistent(&mut self, pid: Id) -> R<usize> {
        let form = "a persistent id must be ('storage', storage class, key, location, numel), as \
                    torch.save writes it";
        let Obj::Tuple(t) = self.obj(pid) else {
            return self.refuse(format!("{form}; got a {}", self.obj(pid).kind()));
        };
        let t = t.clone();
        if t.len() != 5 {
            return self.refuse(format!("{form}; got a tuple of {}", t.len()));
        }
        match self.obj(t[0]) {
            Obj::Str(s) if &**s == "storage" => {}
            Obj::Str(s) => return self.refuse(format!("persistent id of kind '{s}': {form}")),
            o => return self.refuse(format!("{form}; its first item is a {}", o.kind())),
        }
        let Obj::Global(Global::Storage(kind)) = *self.obj(t[1]) else {
            return self.refuse(format!(
                "{form}; its storage class is a {}",
                self.obj(t[1]).kind()
            ));
        };
        let (Obj::Str(key), Obj::Str(_), Obj::Int(numel)) =
            (self.obj(t[2]), self.obj(t[3]), self.obj(t[4]))
        else {
            return self.bad(format!(
                "{form}; its key, location or numel has the wrong type"
            ));
        };
        let Ok(numel) = u64::try_from(*numel) else {
            return self.bad(format!("storage '{key}' has a negative size"));
        };
        let storage = Storage {
            key: key.to_string(),
            kind,
            numel,
        };
        if let Some(&i) = self.storage_keys.get(&storage.key) {
            if self.storages[i] != storage {
                return self.bad(format!(
                    "storage '{}' is declared twice with different types or sizes",
                    storage.key
                ));
            }
            return Ok(i);
        }
        self.storage_keys
            .insert(storage.key.clone(), self.storages.len());
        self.storages.push(storage);
        Ok(self.storages.len() - 1)
    }

    fn reduce(&mut self, f: Id, args: Id) -> R<Id> {
        let Obj::Global(g) = *self.obj(f) else {
            return self.refuse(format!(
                "REDUCE calls a {}; only allowed globals may be called",
                self.obj(f).kind()
            ));
        };
        let Obj::Tuple(a) = self.obj(args) else {
            return self.bad(format!(
                "REDUCE arguments are a {}, not a tuple",
                self.obj(args).kind()
            ));
        };
        let a = a.clone();
        match g {
            Global::OrderedDict => {
                if !a.is_empty() {
                    return self.refuse(
                        "collections.OrderedDict is called with arguments; torch.save calls it \
                         without and adds the items with SETITEMS",
                    );
                }
                self.new_obj(Obj::Dict(Vec::new()))
            }
            Global::RebuildTensorV2 => self.tensor(&a, false),
            Global::RebuildTensorV3 => self.tensor(&a, true),
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let n = if g == Global::RebuildParameter { 3 } else { 4 };
                let name = global_name(g);
                if a.len() != n {
                    return self.bad(format!("{name} takes {n} arguments, not {}", a.len()));
                }
                if !matches!(self.obj(a[0]), Obj::Tensor(_)) {
                    return self.bad(format!(
                        "{name} rebuilds a {}, not a tensor",
                        self.obj(a[0]).kind()
                    ));
                }
                if !matches!(self.obj(a[1]), Obj::Bool(_)) {
                    return self.bad(format!("{name}: requires_grad is not a bool"));
                }
                self.no_hooks(a[2], &name)?;
                Ok(a[0])
            }
            Global::Device => {
                let ok = match &a[..] {
                    [t] => matches!(self.obj(*t), Obj::Str(_)),
                    [t, i] => {
                        matches!(self.obj(*t), Obj::Str(_)) && matches!(self.obj(*i), Obj::Int(_))
                    }
                    _ => false,
                };
                if !ok {
                    return self.refuse("torch.device is called with other than (str[, int])");
                }
                self.new_obj(Obj::Device)
            }
            Global::Storage(_) | Global::Dtype(_) => self.refuse(format!(
                "REDUCE on {}: only the tensor rebuilders, collections.OrderedDict and \
                 torch.device may be called",
                global_name(g)
            )),
        }
    }

    fn no_hooks(&self, id: Id, func: &str) -> R<()> {
        match self.obj(id) {
            Obj::Dict(v) if v.is_empty() => Ok(()),
            Obj::None => Ok(()),
            Obj::Dict(_) => self.refuse(format!("{func}: the tensor has backward hooks")),
            o => self.bad(format!(
                "{func}: backward hooks are a {}, not a dict",
                o.kind()
            )),
        }
    }

    fn ints(&self, id: Id, what: &str, func: &str) -> R<Vec<u64>> {
        let Obj::Tuple(t) = self.obj(id) else {
            return self.bad(format!(
                "{func}: {what} is a {}, not a tuple",
                self.obj(id).kind()
            ));
        };
        if t.len() > MAX_DIMS {
            return self.bad(format!(
                "{func}: {what} has more than {MAX_DIMS} dimensions"
            ));
        }
        t.iter()
            .map(|&i| match self.obj(i) {
                Obj::Int(v) if *v >= 0 => Ok(*v as u64),
                o => self.bad(format!(
                    "{func}: {what} holds a {} that is not a non-negative integer",
                    o.kind()
                )),
            })
            .collect()
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])` or
    /// `_rebuild_tensor_v3(…, hooks, dtype[, metadata])`.
    fn tensor(&mut self, a: &[Id], v3: bool) -> R<Id> {
        let func = if v3 {
            "_rebuild_tensor_v3"
        } else {
            "_rebuild_tensor_v2"
        };
        let base = if v3 { 7 } else { 6 };
        if a.len() != base && a.len() != base + 1 {
            return self.bad(format!(
                "{func} takes {base} or {} arguments, not {}",
                base + 1,
                a.len()
            ));
        }
        let Obj::Storage(si) = *self.obj(a[0]) else {
            return self.bad(format!(
                "{func}: its first argument is a {}, not a storage",
                self.obj(a[0]).kind()
            ));
        };
        let offset = match self.obj(a[1]) {
            Obj::Int(v) if *v >= 0 => *v as u64,
            o => {
                return self.bad(format!(
                    "{func}: storage offset is a {} that is not a non-negative integer",
                    o.kind()
                ))
            }
        };
        let size = self.ints(a[2], "size", func)?;
        let stride = self.ints(a[3], "stride", func)?;
        if size.len() != stride.len() {
            return self.bad(format!(
                "{func}: size {size:?} and stride {stride:?} differ in length"
            ));
        }
        if !matches!(self.obj(a[4]), Obj::Bool(_)) {
            return self.bad(format!("{func}: requires_grad is not a bool"));
        }
        self.no_hooks(a[5], func)?;
        if let Some(&meta) = a.get(base) {
            match self.obj(meta) {
                Obj::None => {}
                Obj::Dict(v) if v.is_empty() => {}
                o => {
                    return self.refuse(format!(
                        "{func}: the tensor carries metadata (a {}; e.g. a conjugate or negative \
                         bit) that modelkin does not apply",
                        o.kind()
                    ))
                }
            }
        }
        let storage_kind = self.storages[si].kind;
        let dtype = if v3 {
            match *self.obj(a[6]) {
                Obj::Global(Global::Dtype(Ok(d))) => d,
                Obj::Global(Global::Dtype(Err(n))) => {
                    return self.refuse(format!(
                        "tensor of dtype torch.{n}, which modelkin does not read"
                    ))
                }
                ref o => {
                    return self.bad(format!(
                        "{func}: dtype is a {}, not a torch dtype",
                        o.kind()
                    ))
                }
            }
        } else {
            match storage_kind {
                StorageType::Typed(d) => d,
                StorageType::Untyped => {
                    return self.bad(format!("{func} on an untyped storage (without a dtype)"))
                }
                StorageType::Unreadable(n) => {
                    return self.refuse(format!(
                        "tensor stored in a {n}, whose dtype modelkin does not read"
                    ))
                }
            }
        };
        if let StorageType::Unreadable(n) = storage_kind {
            return self.refuse(format!(
                "tensor stored in a {n}, whose dtype modelkin does not read"
            ));
        }
        self.new_obj(Obj::Tensor(Box::new(TensorRef {
            storage: si,
            dtype,
            offset,
            size,
            stride,
        })))
    }

    /// Names every tensor reachable from `root` by the keys (and list positions) leading to it.
    ///
    /// The walk keeps, per container entry it will visit, only a link to its parent's entry and the
    /// key (no name strings): names are built for tensors alone, so hostile keys repeated through
    /// the memo cost nothing until they name a tensor, and then count against the name bounds.
    fn flatten(&self, root: Id) -> R<Vec<(String, TensorRef)>> {
        let mut out = Vec::new();
        let mut name_bytes = 0usize;
        // Path steps: (parent step, key); step 0 is the root.
        let mut steps: Vec<(u32, Key)> = vec![(0, Key::Root)];
        // (object, its step, depth)
        let mut todo: Vec<(Id, u32, usize)> = vec![(root, 0, 0)];
        while let Some((id, step, depth)) = todo.pop() {
            if depth > MAX_DEPTH {
                return self.bad(format!(
                    "containers are nested more than {MAX_DEPTH} levels deep (or refer to \
                     themselves)"
                ));
            }
            let children: Box<dyn Iterator<Item = (Key, Id)> + '_> = match self.obj(id) {
                Obj::Tensor(t) => {
                    let name = self.name(&steps, step)?;
                    name_bytes += name.len();
                    if name_bytes > MAX_NAMES_TOTAL {
                        return self.bad(format!(
                            "tensor names take more than {MAX_NAMES_TOTAL} bytes together"
                        ));
                    }
                    out.push((name, (**t).clone()));
                    continue;
                }
                Obj::Dict(kv) => Box::new(kv.iter().rev().map(|&(k, v)| (Key::Obj(k), v))),
                Obj::List(items) => Box::new(
                    items
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, &v)| (Key::Index(i), v)),
                ),
                Obj::Tuple(items) => Box::new(
                    items
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, &v)| (Key::Index(i), v)),
                ),
                _ => continue,
            };
            for (key, v) in children {
                if steps.len() >= MAX_VISITS {
                    return self.bad(format!(
                        "the pickle's containers are visited more than {MAX_VISITS} times (shared \
                         sub-containers)"
                    ));
                }
                steps.push((step, key));
                todo.push((v, (steps.len() - 1) as u32, depth + 1));
            }
        }
        Ok(out)
    }

    /// The dotted name of the tensor at path step `step`, checked against [`MAX_NAME_BYTES`]
    /// before it is built.
    fn name(&self, steps: &[(u32, Key)], mut step: u32) -> R<String> {
        let mut parts: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        let mut len = 0usize;
        loop {
            let (parent, key) = steps[step as usize];
            let part: std::borrow::Cow<'_, str> = match key {
                Key::Root => break,
                Key::Index(i) => i.to_string().into(),
                Key::Obj(k) => match self.obj(k) {
                    Obj::Str(s) => (&**s).into(),
                    Obj::Int(i) => i.to_string().into(),
                    Obj::Bool(b) => (if *b { "True" } else { "False" }).into(),
                    o => {
                        return self.bad(format!(
                            "a tensor sits under a dict key that is a {}, not a string or an \
                             integer",
                            o.kind()
                        ))
                    }
                },
            };
            len += part.len() + 1;
            if len > MAX_NAME_BYTES + 1 {
                return self.bad(format!(
                    "a tensor name is longer than {MAX_NAME_BYTES} bytes"
                ));
            }
            parts.push(part);
            step = parent;
        }
        parts.reverse();
        Ok(parts.join("."))
    }
}

/// A step of the path from the pickle's root to an object.
#[derive(Debug, Clone, Copy)]
enum Key {
    Root,
    /// A dict key (the key object).
    Obj(Id),
    /// A list or tuple position.
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pickle::*;

    fn refused(data: &[u8]) -> String {
        let e = load(data).unwrap_err();
        assert!(e.refused, "not a refusal: {e}");
        e.to_string()
    }

    fn malformed(data: &[u8]) -> String {
        let e = load(data).unwrap_err();
        assert!(!e.refused, "a refusal, not malformed: {e}");
        e.to_string()
    }

    fn with(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn a_torch_state_dict_is_read() {
        let mut p = state_dict(&[
            ("w", tensor("FloatStorage", "0", 12, 0, &[3, 4], &[4, 1])),
            ("b", tensor("BFloat16Storage", "1", 300, 44, &[256], &[1])),
            ("big", tensor("LongStorage", "2", 70000, 0, &[70000], &[1])),
        ]);
        // The `_metadata` attribute of a state dict: BUILD with a dict, as torch.save writes it.
        p.pop();
        p.extend(b"}");
        p.extend(s("_metadata"));
        p.extend(global("collections", "OrderedDict"));
        p.extend(b")R");
        p.extend(s(""));
        p.extend(b"}");
        p.extend(s("version"));
        p.extend(int(1));
        p.extend(b"sssb.");
        let l = load(&p).unwrap();
        let names: Vec<&str> = l.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "b", "big"]);
        let w = &l.tensors[0].1;
        assert_eq!(
            (w.dtype, &w.size, &w.stride, w.offset),
            (DType::F32, &vec![3, 4], &vec![4, 1], 0)
        );
        let b = &l.tensors[1].1;
        assert_eq!((b.dtype, b.offset, b.storage), (DType::BF16, 44, 1));
        assert_eq!(l.storages[1].key, "1");
        assert_eq!(l.storages[1].nbytes(), Some(600));
        assert_eq!(l.storages[2].numel, 70000);
    }

    #[test]
    fn shared_storages_are_declared_once() {
        let p = state_dict(&[
            ("a", tensor("FloatStorage", "0", 8, 0, &[4], &[1])),
            ("b", tensor("FloatStorage", "0", 8, 4, &[4], &[1])),
        ]);
        let l = load(&p).unwrap();
        assert_eq!(l.storages.len(), 1);
        assert_eq!((l.tensors[0].1.storage, l.tensors[1].1.storage), (0, 0));
        assert_eq!(l.tensors[1].1.offset, 4);
        let clash = state_dict(&[
            ("a", tensor("FloatStorage", "0", 8, 0, &[4], &[1])),
            ("b", tensor("HalfStorage", "0", 8, 0, &[4], &[1])),
        ]);
        assert!(malformed(&clash).contains("declared twice"));
    }

    #[test]
    fn protocol_4_with_frames_memoize_and_stack_global_is_read() {
        // As torch.save(..., pickle_protocol=4) writes it: names memoized and fetched back.
        let mut body = b"}\x94".to_vec();
        body.extend(short("w"));
        body.extend(short("torch._utils"));
        body.push(0x94); // memo 1 = "torch._utils"
        body.extend(short("_rebuild_tensor_v2"));
        body.extend(b"\x94\x93\x94(("); // memo 2 = the name, memo 3 = the global
        body.extend(short("storage"));
        body.extend(short("torch"));
        body.extend(short("FloatStorage"));
        body.extend(b"\x93");
        body.extend(short("0"));
        body.extend(short("cpu"));
        body.extend(int(2));
        body.extend(b"tQ");
        body.extend(int(0));
        body.extend(int(2));
        body.push(0x85);
        body.extend(int(1));
        body.push(0x85);
        body.push(0x89);
        body.extend(short("collections"));
        body.extend(short("OrderedDict"));
        body.extend(b"\x93)RtRs");
        // A second tensor through the memoized module string: STACK_GLOBAL from memo.
        body.extend(short("v"));
        body.extend(b"h\x01h\x02\x93((");
        body.extend(short("storage"));
        body.extend(short("torch"));
        body.extend(short("FloatStorage"));
        body.extend(b"\x93");
        body.extend(short("0"));
        body.extend(short("cpu"));
        body.extend(int(2));
        body.extend(b"tQ");
        body.extend(int(1));
        body.extend(int(1));
        body.push(0x85);
        body.extend(int(1));
        body.push(0x85);
        body.push(0x88);
        body.push(b'N');
        body.extend(b"tRs.");
        let mut p = b"\x80\x04\x95".to_vec();
        p.extend((body.len() as u64).to_le_bytes());
        p.extend(body);
        let l = load(&p).unwrap();
        assert_eq!(l.tensors.len(), 2);
        assert_eq!(l.tensors[1].0, "v");
        assert_eq!(l.tensors[1].1.offset, 1);
    }

    #[test]
    fn parameters_v3_tensors_devices_and_dtypes_are_read() {
        let param = with(&[
            &global("torch._utils", "_rebuild_parameter"),
            b"(",
            &tensor("FloatStorage", "0", 2, 0, &[2], &[1]),
            b"\x88",
            &global("collections", "OrderedDict"),
            b")Rt",
            b"R",
        ]);
        let with_state = with(&[
            &global("torch._utils", "_rebuild_parameter_with_state"),
            b"(",
            &tensor("FloatStorage", "0", 2, 0, &[2], &[1]),
            b"\x89}}",
            &s("x"),
            &int(3),
            b"stR",
        ]);
        let v3 = with(&[
            &global("torch._utils", "_rebuild_tensor_v3"),
            b"((",
            &s("storage"),
            &global("torch.storage", "UntypedStorage"),
            &s("1"),
            &s("cpu"),
            &int(8),
            b"tQ",
            &int(1),
            &ints(&[3]),
            &ints(&[1]),
            b"\x89}",
            &global("torch", "uint16"),
            b"}tR",
        ]);
        let device = with(&[&global("torch", "device"), &s("cuda"), &int(0), b"\x86R"]);
        let p = state_dict(&[
            ("p", param),
            ("q", with_state),
            ("u", v3),
            ("dev", device),
            ("dt", global("torch", "float16")),
        ]);
        let l = load(&p).unwrap();
        let got: Vec<(&str, DType)> = l
            .tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.dtype))
            .collect();
        assert_eq!(
            got,
            [("p", DType::F32), ("q", DType::F32), ("u", DType::U16)]
        );
        assert_eq!(l.storages[1].kind, StorageType::Untyped);
    }

    #[test]
    fn nested_containers_are_flattened_with_dots() {
        let t = tensor("FloatStorage", "0", 1, 0, &[1], &[1]);
        // {"model": {"w": t, 3: t}, "opt": [t, {"m": t}], "epoch": 7, "lr": 0.1, "tag": b"x", "big": 2**80}
        let p = with(&[
            PROTO2,
            b"}(",
            &s("model"),
            b"}q\x00(",
            &s("w"),
            &t,
            &int(3),
            b"h\x01", // not yet memoized: malformed — replaced below
        ]);
        assert!(malformed(&p).contains("memo entry 1"));
        let p = with(&[
            PROTO2,
            b"}(",
            &s("model"),
            b"}(",
            &s("w"),
            &t,
            b"q\x01",
            &int(3),
            b"h\x01u",
            &s("opt"),
            b"]q\x02",
            &t,
            b"a(}",
            &s("m"),
            &t,
            b"se",
            &s("epoch"),
            &int(7),
            &s("lr"),
            b"G\x3f\xb9\x99\x99\x99\x99\x99\x9a",
            &s("tag"),
            b"C\x01x",
            &s("big"),
            b"\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
            &s("neg"),
            b"\x8a\x01\xff",
            &s("old"),
            b"U\x03abcT\x01\x00\x00\x00d\x86", // SHORT_BINSTRING, BINSTRING, TUPLE2
            &s("flags"),
            b"(N\x880\x89t", // NONE, NEWTRUE, POP, NEWFALSE
            &s("built"),
            b"(",
            &s("k"),
            &t,
            b"d",
            &s("listed"),
            b"(",
            &t,
            b"l",
            &s("dup"),
            &t,
            b"2",
            b"\x86",
            &s("popmark"),
            b"(K\x01K\x021N",
            &s("long"),
            b"Nr\x00\x01\x00\x00j\x00\x01\x00\x00\x86",
            b"u.",
        ]);
        let l = load(&p).unwrap();
        let names: Vec<&str> = l.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["model.w", "model.3", "opt.0", "opt.1.m", "built.k", "listed.0", "dup.0", "dup.1",]
        );
    }

    #[test]
    fn a_bare_tensor_has_an_empty_name() {
        let p = with(&[
            PROTO2,
            &tensor("HalfStorage", "0", 4, 0, &[2, 2], &[2, 1]),
            b".",
        ]);
        let l = load(&p).unwrap();
        assert_eq!(l.tensors[0].0, "");
        assert_eq!(l.tensors[0].1.dtype, DType::F16);
    }

    #[test]
    fn forbidden_globals_are_refused_whatever_the_route() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("__builtin__", "eval"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_qtensor"),
            ("torch.serialization", "_get_layout"),
            ("torch", "FloatStorage.__init__"),
            ("collections", "OrderedDict.fromkeys"),
            ("numpy.core.multiarray", "_reconstruct"),
        ] {
            let via_global = with(&[PROTO2, &global(m, n), &s("echo"), b"\x85R."]);
            let msg = refused(&via_global);
            assert!(
                msg.contains(&format!("'{m}.{n}'")) && msg.contains("offset 2"),
                "{msg}"
            );
            let via_stack = with(&[
                b"\x80\x04",
                &short(m),
                &short(n),
                b"\x93",
                &short("x"),
                b"\x85R.",
            ]);
            assert!(refused(&via_stack).contains(&format!("'{m}.{n}'")));
        }
        // STACK_GLOBAL building "os"/"system" from memoized strings.
        let memo = with(&[
            b"\x80\x04",
            &short("os"),
            b"\x94",
            &short("system"),
            b"\x94",
            b"0",
            b"0",
            b"h\x00h\x01\x93.",
        ]);
        assert!(refused(&memo).contains("'os.system'"));
        // STACK_GLOBAL whose operands are not strings.
        let computed = with(&[b"\x80\x04", b"}", &short("system"), b"\x93."]);
        assert!(refused(&computed).contains("must be strings"));
        // A non-printable name cannot smuggle anything either.
        assert!(refused(b"\x80\x02cos\tx\nsystem\n.").contains("plain ASCII"));
        assert!(
            malformed(&[b"\x80\x02c".as_slice(), &[b'a'; 300], b"\nb\n."].concat()).contains("256")
        );
    }

    #[test]
    fn code_running_opcodes_are_refused() {
        for (p, name) in [
            (b"\x80\x02(ios\nsystem\n.".as_slice(), "INST"),
            (
                b"\x80\x02(cos\nsystem\nX\x02\x00\x00\x00lso.",
                "'os.system'",
            ),
            (b"\x80\x02(}o.", "OBJ"),
            (b"\x80\x02}}\x81.", "NEWOBJ"),
            (b"\x80\x04}})}\x92.", "NEWOBJ_EX"),
            (b"\x80\x02\x82\x01.", "EXT1"),
            (b"\x80\x02\x83\x01\x00.", "EXT1/EXT2/EXT4"),
            (b"\x80\x02\x84\x01\x00\x00\x00.", "EXT"),
            (b"\x80\x02Pstorage\n.", "PERSID"),
            (b"\x80\x02I1\n.", "protocol-0"),
            (b"\x80\x02S'x'\n.", "protocol-0"),
            (b"\x80\x02N0g0\n.", "protocol-0"),
            (b"\x80\x04\x8f.", "set"),
            (b"\x80\x05\x97.", "buffer"),
            (b"\x80\x02\x8b\x01\x00\x00\x00\x01.", "LONG4"),
        ] {
            let msg = refused(p);
            assert!(msg.contains(name), "{name}: {msg}");
        }
        assert!(malformed(b"\x80\x02\xff.").contains("unknown opcode byte 0xff"));
    }

    #[test]
    fn reduce_and_build_only_apply_to_allowed_objects() {
        // REDUCE on a dict, a storage class, a dtype; OrderedDict with arguments.
        assert!(refused(b"\x80\x02})R.").contains("REDUCE calls a dict"));
        let storage = with(&[PROTO2, &global("torch", "FloatStorage"), b")R."]);
        assert!(refused(&storage).contains("REDUCE on the F32 storage class"));
        let dtype = with(&[PROTO2, &global("torch", "float32"), b")R."]);
        assert!(refused(&dtype).contains("REDUCE on the F32 dtype"));
        let od = with(&[PROTO2, &global("collections", "OrderedDict"), b"]\x85R."]);
        assert!(refused(&od).contains("called with arguments"));
        let dev = with(&[PROTO2, &global("torch", "device"), b"}\x85R."]);
        assert!(refused(&dev).contains("torch.device"));
        // BUILD on anything but a dict.
        assert!(refused(b"\x80\x02]}b.").contains("BUILD on a list"));
        // APPEND / SETITEM on the wrong container.
        assert!(refused(b"\x80\x02}Na.").contains("APPEND to a dict"));
        assert!(refused(b"\x80\x02]NNs.").contains("SETITEM on a list"));
    }

    #[test]
    fn persistent_ids_must_be_torch_storages() {
        assert!(refused(b"\x80\x02NQ.").contains("persistent id"));
        let kind = with(&[
            PROTO2,
            b"(",
            &s("module"),
            &global("torch", "FloatStorage"),
            &s("0"),
            &s("cpu"),
            &int(1),
            b"tQ.",
        ]);
        assert!(refused(&kind).contains("kind 'module'"));
        let class = with(&[
            PROTO2,
            b"(",
            &s("storage"),
            &global("torch", "float32"),
            &s("0"),
            &s("cpu"),
            &int(1),
            b"tQ.",
        ]);
        assert!(refused(&class).contains("storage class is a global"));
        let short_tuple = with(&[PROTO2, &s("storage"), b"\x85Q."]);
        assert!(refused(&short_tuple).contains("tuple of 1"));
        let numel = with(&[
            PROTO2,
            b"(",
            &s("storage"),
            &global("torch", "FloatStorage"),
            &s("0"),
            &s("cpu"),
            b"J\xff\xff\xff\xfftQ.",
        ]);
        assert!(malformed(&numel).contains("negative size"));
    }

    #[test]
    fn tensor_arguments_are_checked() {
        let rebuild = |tail: &[u8]| {
            with(&[
                PROTO2,
                &global("torch._utils", "_rebuild_tensor_v2"),
                b"((",
                &s("storage"),
                &global("torch", "FloatStorage"),
                &s("0"),
                &s("cpu"),
                &int(4),
                b"tQ",
                &int(0),
                &ints(&[4]),
                &ints(&[1]),
                b"\x89",
                tail,
                b"tR.",
            ])
        };
        assert!(load(&rebuild(b"}")).is_ok());
        assert!(load(&rebuild(b"}N")).is_ok());
        assert!(load(&rebuild(b"}}")).is_ok());
        let hooks = rebuild(&[b"}".as_slice(), &s("h"), b"Ns"].concat());
        assert!(refused(&hooks).contains("backward hooks"));
        let meta = rebuild(&[b"}}".as_slice(), &s("conj"), b"\x88s"].concat());
        assert!(refused(&meta).contains("metadata"));
        assert!(malformed(&rebuild(b"]")).contains("hooks are a list"));
        let neg = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_tensor_v2"),
            b"((",
            &s("storage"),
            &global("torch", "FloatStorage"),
            &s("0"),
            &s("cpu"),
            &int(4),
            b"tQ",
            b"J\xff\xff\xff\xff",
            &ints(&[4]),
            &ints(&[1]),
            b"\x89}tR.",
        ]);
        assert!(malformed(&neg).contains("storage offset"));
        let complex = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_tensor_v2"),
            b"((",
            &s("storage"),
            &global("torch", "ComplexFloatStorage"),
            &s("0"),
            &s("cpu"),
            &int(4),
            b"tQ",
            &int(0),
            &ints(&[4]),
            &ints(&[1]),
            b"\x89}tR.",
        ]);
        assert!(refused(&complex).contains("ComplexFloatStorage"));
        let wrong_len = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_tensor_v2"),
            b"NN\x86R.",
        ]);
        assert!(malformed(&wrong_len).contains("takes 6 or 7 arguments"));
        let not_storage = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_tensor_v2"),
            b"(NK\x00)))\x89}tR.",
        ]);
        assert!(malformed(&not_storage).contains("not a storage"));
        let mismatch = [&tensor("FloatStorage", "0", 4, 0, &[4], &[1, 1])[..]].concat();
        assert!(malformed(&[PROTO2, &mismatch, b"."].concat()).contains("differ in length"));
        let v3_complex = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_tensor_v3"),
            b"((",
            &s("storage"),
            &global("torch", "UntypedStorage"),
            &s("0"),
            &s("cpu"),
            &int(8),
            b"tQ",
            &int(0),
            &ints(&[1]),
            &ints(&[1]),
            b"\x89}",
            &global("torch", "complex64"),
            b"tR.",
        ]);
        assert!(refused(&v3_complex).contains("torch.complex64"));
        let param = with(&[
            PROTO2,
            &global("torch._utils", "_rebuild_parameter"),
            b"(N\x89}tR.",
        ]);
        assert!(malformed(&param).contains("not a tensor"));
    }

    #[test]
    fn malformed_pickles_are_reported_with_their_offset() {
        assert!(malformed(b"").contains("without a STOP"));
        assert!(malformed(b"\x80\x02}").contains("without a STOP"));
        let e = load(b"\x80\x02}s.").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.reason.contains("underflow"));
        assert!(malformed(b"\x80\x02.").contains("underflow"));
        assert!(malformed(b"\x80\x02(}t(.").contains("underflow"));
        assert!(malformed(b"\x80\x02h\x05.").contains("memo entry 5"));
        assert!(malformed(b"\x80\x02t.").contains("no MARK"));
        assert!(malformed(b"\x80\x02(K\x01d.").contains("odd number"));
        assert!(malformed(b"\x80\x09.").contains("protocol 9"));
        assert!(malformed(b"\x80\x02X\x02\x00\x00\x00\xff\xfe.").contains("UTF-8"));
        assert!(malformed(b"\x80\x02T\xff\xff\xff\xff.").contains("negative"));
    }

    #[test]
    fn huge_declared_lengths_fail_before_allocating() {
        for p in [
            b"\x80\x02X\xff\xff\xff\xff.".as_slice(),
            b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff.",
            b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.",
            b"\x80\x02B\xff\xff\xff\xff.",
            b"\x80\x02T\xff\xff\xff\x7f.",
            b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff}.",
            b"\x80\x02\x8a\xff\x00.",
        ] {
            let msg = malformed(p);
            assert!(msg.contains("left") || msg.contains("runs past"), "{msg}");
        }
    }

    #[test]
    fn bounds_stop_growing_machines() {
        // Too many open MARKs.
        let marks = [b"\x80\x02".as_slice(), &vec![b'('; MAX_MARKS + 1], b"."].concat();
        assert!(malformed(&marks).contains("nested MARKs"));
        // Too many objects.
        let objs = [b"\x80\x02".as_slice(), &vec![b']'; MAX_OBJECTS], b"."].concat();
        assert!(malformed(&objs).contains("objects"));
        // Too many memo entries.
        let memo = [b"\x80\x04N".as_slice(), &vec![0x94; MAX_MEMO + 1], b"."].concat();
        assert!(malformed(&memo).contains("memo"));
        // A stack that never shrinks.
        let stack = [b"\x80\x02".as_slice(), &vec![b'N'; MAX_STACK + 1], b"."].concat();
        assert!(malformed(&stack).contains("stack"));
    }

    #[test]
    fn bounds_stop_deep_cyclic_and_shared_structures() {
        // Lists nested deeper than MAX_DEPTH around a tensor.
        let t = tensor("FloatStorage", "0", 1, 0, &[1], &[1]);
        let deep = with(&[
            PROTO2,
            &[b'('; MAX_DEPTH + 1],
            &t,
            &[b'l'; MAX_DEPTH + 1],
            b".",
        ]);
        assert!(malformed(&deep).contains("nested more than"));
        // A list that contains itself.
        let cycle = with(&[PROTO2, b"]q\x00h\x00a."]);
        assert!(malformed(&cycle).contains("nested more than"));
        // Doubling: t(i+1) = (t(i), t(i)) — 2^40 paths through 40 tuples: the visits are capped,
        // and so are the bytes of the names when the leaves are tensors.
        for (leaf, expect) in [
            (b"N".to_vec(), "visited more than"),
            (t.clone(), "bytes together"),
        ] {
            let mut dag = with(&[PROTO2, &leaf]);
            for _ in 0..40 {
                dag.extend(b"2\x86");
            }
            dag.push(b'.');
            assert!(malformed(&dag).contains(expect), "{expect}");
        }
    }

    #[test]
    fn tensor_names_are_bounded() {
        let t = tensor("FloatStorage", "0", 1, 0, &[1], &[1]);
        // {k: {k: t}} with a 40 000-byte key: the joined name passes 64 KiB.
        let key = s(&"k".repeat(40_000));
        let p = with(&[
            PROTO2, b"}", &key, b"q\x00", b"}", b"h\x00", &t, b"s", b"s.",
        ]);
        assert!(malformed(&p).contains("longer than"));
        let ok = with(&[PROTO2, b"}", &key, &t, b"s."]);
        assert_eq!(load(&ok).unwrap().tensors[0].0.len(), 40_000);
        // One 60 000-byte key reused through the memo for 100 000 entries costs nothing while the
        // values are not tensors, and is capped once they are.
        let big = s(&"k".repeat(60_000));
        let many = |value: &[u8]| {
            let mut p = with(&[PROTO2, &big, b"q\x00", b"0", b"}("]);
            for _ in 0..100_000 {
                p.extend(b"h\x00");
                p.extend(value);
            }
            p.extend(b"u.");
            p
        };
        assert!(load(&many(b"N")).unwrap().tensors.is_empty());
        assert!(malformed(&many(&t)).contains("bytes together"));
        // A tensor under a tuple key has no name.
        let p = with(&[PROTO2, b"})", &t, b"s."]);
        assert!(malformed(&p).contains("not a string or an integer"));
    }

    mod fuzz {
        use super::super::*;
        use crate::testing::pickle::*;
        use proptest::prelude::*;

        fn seed() -> Vec<u8> {
            state_dict(&[
                ("w", tensor("FloatStorage", "0", 12, 0, &[3, 4], &[4, 1])),
                ("b", tensor("HalfStorage", "1", 4, 1, &[3], &[1])),
            ])
        }

        proptest! {
            #[test]
            fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = load(&data);
            }

            #[test]
            fn mutated_state_dicts_never_panic(
                edits in proptest::collection::vec((0usize..4096, any::<u8>(), 0u8..3), 1..6)
            ) {
                let mut p = seed();
                for (pos, byte, how) in edits {
                    let i = pos % (p.len() + 1);
                    match how {
                        0 if i < p.len() => p[i] = byte,
                        1 => p.insert(i, byte),
                        _ => p.truncate(i),
                    }
                }
                if let Ok(l) = load(&p) {
                    for (_, t) in &l.tensors {
                        prop_assert!(t.storage < l.storages.len());
                        prop_assert_eq!(t.size.len(), t.stride.len());
                    }
                }
            }
        }
    }
}
