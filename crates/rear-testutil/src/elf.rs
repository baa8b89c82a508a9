//! Test helper: tiny, valid ELF files built in memory (no compiler, no linker).
//!
//! Stage: tests only. Input: a [`DynElf`] description. Output: the bytes of a little-endian
//! `ET_DYN` (or, with [`static_elf`], an `ET_EXEC` without dynamic linking) that goblin and
//! the resolver read like a real binary.
//!
//! The file is assembled by hand rather than with `object`'s writer so that it stays a few
//! hundred bytes and fully deterministic (same input, same bytes). Layout, per the System V
//! gABI ("Object Files" and "Program Loading"), with one `PT_LOAD` mapping the whole file at
//! virtual address 0 so that `DT_STRTAB`'s address is also its file offset:
//!
//! ```text
//! ELF header | program headers (PT_INTERP?, PT_LOAD, PT_DYNAMIC) | interp\0 | .dynstr | .dynamic
//! ```

/// `ET_EXEC`: an executable that is not position-independent.
pub const ET_EXEC: u16 = 2;
/// `ET_DYN`: a shared object or a position-independent executable.
pub const ET_DYN: u16 = 3;
/// `EM_386`: Intel 80386.
pub const EM_386: u16 = 3;
/// `EM_X86_64`: AMD x86-64.
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`: ARM 64-bit.
pub const EM_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What goes into a tiny dynamically linked ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynElf {
    /// `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`; `None` for a library.
    pub interp: Option<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// One `DT_NEEDED` per entry, in order.
    pub needed: Vec<String>,
    /// The entries of one `DT_RUNPATH`, joined with `:`; none when empty.
    pub runpath: Vec<String>,
    /// The entries of one `DT_RPATH`, joined with `:`; none when empty.
    pub rpath: Vec<String>,
    /// `ELFCLASS64` when true, `ELFCLASS32` otherwise.
    pub class64: bool,
    /// `e_machine` ([`EM_X86_64`], [`EM_386`], ...).
    pub machine: u16,
}

impl Default for DynElf {
    /// A 64-bit x86-64 object with nothing in it but an empty dynamic section.
    fn default() -> Self {
        DynElf {
            interp: None,
            soname: None,
            needed: Vec::new(),
            runpath: Vec::new(),
            rpath: Vec::new(),
            class64: true,
            machine: EM_X86_64,
        }
    }
}

impl DynElf {
    /// A shared library with this soname (64-bit x86-64, no dependencies).
    pub fn lib(soname: &str) -> Self {
        DynElf {
            soname: Some(soname.to_string()),
            ..DynElf::default()
        }
    }

    /// A program with the x86-64 glibc interpreter that needs these libraries.
    pub fn program(needed: &[&str]) -> Self {
        DynElf {
            interp: Some("/lib64/ld-linux-x86-64.so.2".to_string()),
            needed: needed.iter().map(|s| s.to_string()).collect(),
            ..DynElf::default()
        }
    }
}

/// Little-endian writer for the two ELF classes (32-bit words or 64-bit words).
struct Out {
    bytes: Vec<u8>,
    class64: bool,
}

impl Out {
    fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    /// An address, offset or size: `Elf64_Addr`/`Elf64_Off`/`Elf64_Xword` or their 32-bit forms.
    fn word(&mut self, v: u64) {
        if self.class64 {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        } else {
            // Test files are a few hundred bytes, far below 4 GiB.
            self.bytes.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }
    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }
}

/// One program header, written in the class's field order.
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    size: u64,
    align: u64,
}

fn write_phdr(out: &mut Out, ph: &Phdr) {
    if out.class64 {
        // Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align.
        out.u32(ph.p_type);
        out.u32(ph.flags);
        out.word(ph.offset);
        out.word(ph.offset);
        out.word(ph.offset);
        out.word(ph.size);
        out.word(ph.size);
        out.word(ph.align);
    } else {
        // Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align.
        out.u32(ph.p_type);
        out.word(ph.offset);
        out.word(ph.offset);
        out.word(ph.offset);
        out.word(ph.size);
        out.word(ph.size);
        out.u32(ph.flags);
        out.word(ph.align);
    }
}

fn write_ehdr(out: &mut Out, e_type: u16, machine: u16, phnum: u16) {
    let (ehsize, phentsize, shentsize) = if out.class64 {
        (64, 56, 64)
    } else {
        (52, 32, 40)
    };
    // e_ident: magic, class, data (LSB), version, OS ABI (System V), ABI version, padding.
    out.bytes.extend_from_slice(b"\x7fELF");
    out.bytes.push(if out.class64 { 2 } else { 1 });
    out.bytes
        .extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.u16(e_type);
    out.u16(machine);
    out.u32(1); // e_version
    out.word(0); // e_entry
    out.word(u64::from(ehsize)); // e_phoff: right after this header
    out.word(0); // e_shoff: no section headers
    out.u32(0); // e_flags
    out.u16(ehsize);
    out.u16(phentsize);
    out.u16(phnum);
    out.u16(shentsize);
    out.u16(0); // e_shnum
    out.u16(0); // e_shstrndx
}

/// The bytes of a tiny `ET_DYN` with the given interpreter, soname, needed libraries and
/// search paths. Goblin parses it; the same input always gives the same bytes.
pub fn dyn_elf(opts: &DynElf) -> Vec<u8> {
    let class64 = opts.class64;
    let (ehsize, phentsize, wordsize) = if class64 { (64, 56, 8) } else { (52, 32, 4) };
    let phnum = if opts.interp.is_some() { 3 } else { 2 };

    // .dynstr: a leading NUL (offset 0 is the empty string), then each string once.
    let mut dynstr = vec![0u8];
    let mut add = |s: &str| -> u64 {
        let at = dynstr.len() as u64;
        dynstr.extend_from_slice(s.as_bytes());
        dynstr.push(0);
        at
    };
    let mut dyns: Vec<(u64, u64)> = Vec::new();
    for n in &opts.needed {
        dyns.push((DT_NEEDED, add(n)));
    }
    if let Some(s) = &opts.soname {
        dyns.push((DT_SONAME, add(s)));
    }
    if !opts.rpath.is_empty() {
        dyns.push((DT_RPATH, add(&opts.rpath.join(":"))));
    }
    if !opts.runpath.is_empty() {
        dyns.push((DT_RUNPATH, add(&opts.runpath.join(":"))));
    }

    let interp_off = ehsize + phnum * phentsize;
    let interp_len = opts.interp.as_ref().map_or(0, |s| s.len() + 1);
    let dynstr_off = interp_off + interp_len;
    let dynamic_off = (dynstr_off + dynstr.len()).next_multiple_of(wordsize);
    dyns.push((DT_STRTAB, dynstr_off as u64));
    dyns.push((DT_STRSZ, dynstr.len() as u64));
    dyns.push((DT_NULL, 0));
    let dynamic_len = dyns.len() * 2 * wordsize;
    let total = dynamic_off + dynamic_len;

    let mut out = Out {
        bytes: Vec::with_capacity(total),
        class64,
    };
    write_ehdr(&mut out, ET_DYN, opts.machine, phnum as u16);
    if opts.interp.is_some() {
        let ph = Phdr {
            p_type: PT_INTERP,
            flags: 4,
            offset: interp_off as u64,
            size: interp_len as u64,
            align: 1,
        };
        write_phdr(&mut out, &ph);
    }
    let load = Phdr {
        p_type: PT_LOAD,
        flags: 6, // read + write
        offset: 0,
        size: total as u64,
        align: 0x1000,
    };
    write_phdr(&mut out, &load);
    let dynamic = Phdr {
        p_type: PT_DYNAMIC,
        flags: 6,
        offset: dynamic_off as u64,
        size: dynamic_len as u64,
        align: wordsize as u64,
    };
    write_phdr(&mut out, &dynamic);
    if let Some(interp) = &opts.interp {
        out.bytes.extend_from_slice(interp.as_bytes());
        out.bytes.push(0);
    }
    out.bytes.extend_from_slice(&dynstr);
    out.align(wordsize);
    for (tag, val) in dyns {
        out.word(tag);
        out.word(val);
    }
    out.bytes
}

/// The bytes of a tiny statically linked `ET_EXEC`: one `PT_LOAD`, no `PT_INTERP`, no
/// `PT_DYNAMIC`.
pub fn static_elf(class64: bool, machine: u16) -> Vec<u8> {
    let (ehsize, phentsize) = if class64 { (64, 56) } else { (52, 32) };
    let mut out = Out {
        bytes: Vec::new(),
        class64,
    };
    write_ehdr(&mut out, ET_EXEC, machine, 1);
    let load = Phdr {
        p_type: PT_LOAD,
        flags: 5, // read + execute
        offset: 0,
        size: (ehsize + phentsize) as u64,
        align: 0x1000,
    };
    write_phdr(&mut out, &load);
    out.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dyn_elf_goblin_reads_it() {
        let opts = DynElf {
            interp: Some("/lib64/ld-linux-x86-64.so.2".into()),
            soname: Some("libx.so.1".into()),
            needed: vec!["libc.so.6".into(), "libm.so.6".into()],
            runpath: vec!["$ORIGIN/../lib".into(), "/opt/x".into()],
            rpath: vec!["/old".into()],
            ..DynElf::default()
        };
        let bytes = dyn_elf(&opts);
        assert!(bytes.len() < 700, "{}", bytes.len());
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        assert!(elf.is_64);
        assert_eq!(elf.header.e_machine, EM_X86_64);
        assert_eq!(elf.interpreter, Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(elf.soname, Some("libx.so.1"));
        assert_eq!(elf.libraries, ["libc.so.6", "libm.so.6"]);
        assert_eq!(elf.runpaths, ["$ORIGIN/../lib:/opt/x"]);
        assert_eq!(elf.rpaths, ["/old"]);
    }

    #[test]
    fn dyn_elf_32_bit() {
        let opts = DynElf {
            class64: false,
            machine: EM_386,
            ..DynElf::program(&["libc.so.6"])
        };
        let bytes = dyn_elf(&opts);
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        assert!(!elf.is_64);
        assert_eq!(elf.header.e_machine, EM_386);
        assert_eq!(elf.libraries, ["libc.so.6"]);
    }

    #[test]
    fn dyn_elf_is_stable() {
        let opts = DynElf::program(&["liba.so.1"]);
        assert_eq!(dyn_elf(&opts), dyn_elf(&opts));
    }

    #[test]
    fn static_elf_has_no_dynamic_section() {
        let bytes = static_elf(true, EM_X86_64);
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        assert!(elf.dynamic.is_none());
        assert!(elf.interpreter.is_none());
    }
}
