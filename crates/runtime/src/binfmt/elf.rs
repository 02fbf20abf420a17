//! What the programs of each platform look like to the kernel: the ELF identification (class,
//! byte order) and machine number an OCI platform's binaries carry, and the name qemu gives
//! that architecture (`qemu-<name>-static`).
//!
//! binfmt_misc decides by the first bytes of a file, so to know which handler would run a
//! platform's programs we build the header such a program starts with and match it as the
//! kernel does (see [`super::entry::Handler::matches`]).

use whittle_oci::Platform;

/// `e_type` of a fixed-address executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable (and of shared objects).
pub const ET_DYN: u16 = 3;

/// `EI_CLASS`: 32-bit objects.
const ELFCLASS32: u8 = 1;
/// `EI_CLASS`: 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `EI_DATA`: little-endian.
const LSB: u8 = 1;
/// `EI_DATA`: big-endian.
const MSB: u8 = 2;

/// How much of a file the kernel reads before choosing a handler (`BINPRM_BUF_SIZE`): a
/// handler's offset plus magic never reaches past it.
pub const HEADER_LEN: usize = 256;

/// One architecture: the OCI name, qemu's name and the ELF identification of its programs.
#[derive(Debug, PartialEq, Eq)]
pub struct Arch {
    /// The OCI (Go) architecture name: `arm64`, `arm`, `386`, ...
    pub oci: &'static str,
    /// qemu's name for it: the interpreter is `qemu-<qemu>-static`, Debian's handler
    /// `qemu-<qemu>`.
    pub qemu: &'static str,
    /// `EI_CLASS`: 1 (32-bit) or 2 (64-bit).
    pub class: u8,
    /// `EI_DATA`: 1 (little-endian) or 2 (big-endian).
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
    /// A 32-bit architecture the host's kernel may run natively when this is the host
    /// (`386` on `amd64`, `arm` on `arm64`), given the kernel's compat support.
    pub compat: Option<&'static str>,
}

/// Every architecture whittle knows, in the order `whittle binfmt` lists them.
pub const ARCHES: &[Arch] = &[
    arch("amd64", "x86_64", ELFCLASS64, LSB, 62, Some("386")),
    arch("386", "i386", ELFCLASS32, LSB, 3, None),
    arch("arm64", "aarch64", ELFCLASS64, LSB, 183, Some("arm")),
    arch("arm", "arm", ELFCLASS32, LSB, 40, None),
    arch("riscv64", "riscv64", ELFCLASS64, LSB, 243, None),
    arch("ppc64le", "ppc64le", ELFCLASS64, LSB, 21, None),
    arch("ppc64", "ppc64", ELFCLASS64, MSB, 21, None),
    arch("s390x", "s390x", ELFCLASS64, MSB, 22, None),
    arch("mips64le", "mips64el", ELFCLASS64, LSB, 8, None),
    arch("mips64", "mips64", ELFCLASS64, MSB, 8, None),
    arch("loong64", "loongarch64", ELFCLASS64, LSB, 258, None),
];

const fn arch(
    oci: &'static str,
    qemu: &'static str,
    class: u8,
    data: u8,
    machine: u16,
    compat: Option<&'static str>,
) -> Arch {
    Arch {
        oci,
        qemu,
        class,
        data,
        machine,
        compat,
    }
}

/// The platforms `whittle binfmt` reports on (arm listed per variant, as buildx does).
pub fn known_platforms() -> Vec<Platform> {
    [
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
        "linux/mips64le",
        "linux/mips64",
        "linux/loong64",
    ]
    .iter()
    .filter_map(|p| Platform::parse(p))
    .collect()
}

/// The architecture of `platform`'s programs, if whittle knows it (any variant: `arm/v6` and
/// `arm/v7` programs are both 32-bit little-endian ARM for the kernel). Only Linux programs
/// are ELF files binfmt_misc can route.
pub fn arch_of(platform: &Platform) -> Option<&'static Arch> {
    if platform.os != "linux" {
        return None;
    }
    ARCHES.iter().find(|a| a.oci == platform.arch)
}

/// The architecture whittle itself was built for (the host's, for the kernel's ELF loader).
pub fn host_arch() -> Option<&'static Arch> {
    let oci = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "x86") {
        "386"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        "mips64le"
    } else if cfg!(target_arch = "mips64") {
        "mips64"
    } else if cfg!(target_arch = "loongarch64") {
        "loong64"
    } else {
        return None;
    };
    ARCHES.iter().find(|a| a.oci == oci)
}

impl Arch {
    /// The first [`HEADER_LEN`] bytes of a program of this architecture with this `e_type`:
    /// the ELF identification (OS ABI 0; handlers mask it out, as programs built for
    /// GNU/Linux say 3), `e_type`, `e_machine` and `e_version`, zeros after.
    pub fn header(&self, e_type: u16) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = self.class;
        h[5] = self.data;
        h[6] = 1; // EI_VERSION: EV_CURRENT
        let (t, m, v) = if self.data == MSB {
            (
                e_type.to_be_bytes(),
                self.machine.to_be_bytes(),
                1u32.to_be_bytes(),
            )
        } else {
            (
                e_type.to_le_bytes(),
                self.machine.to_le_bytes(),
                1u32.to_le_bytes(),
            )
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h[20..24].copy_from_slice(&v);
        h
    }

    /// The magic and mask that select this architecture's executables and PIEs, as qemu's
    /// `qemu-binfmt-conf.sh` writes them: the identification without the OS ABI byte, and
    /// `e_type` 2 or 3. Used when no packaged format says otherwise.
    pub fn default_magic(&self) -> (Vec<u8>, Vec<u8>) {
        let magic = self.header(ET_EXEC)[..20].to_vec();
        let mut mask = vec![0xff; 20];
        mask[7] = 0; // EI_OSABI
        let low_type_byte = if self.data == MSB { 17 } else { 16 };
        mask[low_type_byte] = 0xfe; // ET_EXEC or ET_DYN
        (magic, mask)
    }

    /// Whether this host architecture's kernel can run `other`'s programs itself: the same
    /// architecture, or its 32-bit compat partner.
    pub fn runs_natively(&self, other: &Arch) -> bool {
        self == other || self.compat == Some(other.oci)
    }
}

/// The architecture an ELF file's first bytes name, if it is an ELF file of one whittle knows.
pub fn arch_of_header(header: &[u8]) -> Option<&'static Arch> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return None;
    }
    let (class, data) = (header[4], header[5]);
    let machine = match data {
        LSB => u16::from_le_bytes([header[18], header[19]]),
        MSB => u16::from_be_bytes([header[18], header[19]]),
        _ => return None,
    };
    ARCHES
        .iter()
        .find(|a| a.class == class && a.data == data && a.machine == machine)
}

/// The architecture of a program that starts with `header` when `platform` does not run it
/// (neither the platform's architecture nor its 32-bit compat partner): what the runtime
/// refuses, so that a mislabelled image never runs the host's own programs in place of
/// emulated ones. A script (`#!`) is judged by its interpreter, whose first bytes `open`
/// returns; anything else that is not an ELF file of a known architecture passes.
pub fn foreign_program(
    platform: &Platform,
    header: &[u8],
    open: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Option<&'static Arch> {
    let want = arch_of(platform)?;
    let header = match header.strip_prefix(b"#!") {
        Some(rest) => {
            let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
            let interp = std::str::from_utf8(line).ok()?.split_whitespace().next()?;
            open(interp)?
        }
        None => header.to_vec(),
    };
    let got = arch_of_header(&header)?;
    (!want.runs_natively(got)).then_some(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platforms_map_to_their_elf_identification() {
        let arm64 = arch_of(&p("linux/arm64")).unwrap();
        assert_eq!((arm64.class, arm64.data, arm64.machine), (2, 1, 183));
        assert_eq!(arm64.qemu, "aarch64");
        for v in ["linux/arm/v6", "linux/arm/v7"] {
            assert_eq!(arch_of(&p(v)).unwrap().qemu, "arm");
        }
        assert_eq!(arch_of(&p("linux/386")).unwrap().class, 1);
        assert_eq!(arch_of(&p("linux/s390x")).unwrap().data, 2);
        assert_eq!(arch_of(&p("linux/mips64le")).unwrap().qemu, "mips64el");
        assert!(arch_of(&p("windows/amd64")).is_none());
        assert!(arch_of(&p("linux/sparc64")).is_none());
        assert_eq!(known_platforms().len(), 11);
    }

    #[test]
    fn headers_carry_type_and_machine_in_the_right_byte_order() {
        let s390x = arch_of(&p("linux/s390x")).unwrap().header(ET_DYN);
        assert_eq!(&s390x[..7], b"\x7fELF\x02\x02\x01");
        assert_eq!(&s390x[16..20], &[0, 3, 0, 22]);
        let arm = arch_of(&p("linux/arm/v7")).unwrap().header(ET_EXEC);
        assert_eq!(&arm[16..20], &[2, 0, 40, 0]);
        assert_eq!(arch_of_header(&arm).unwrap().oci, "arm");
        assert_eq!(arch_of_header(&s390x).unwrap().oci, "s390x");
        assert!(arch_of_header(b"#!/bin/sh\n").is_none());
    }

    #[test]
    fn the_default_magic_is_qemus() {
        // What Debian's qemu-user-static registers for aarch64 (from qemu-binfmt-conf.sh).
        let (magic, mask) = arch_of(&p("linux/arm64")).unwrap().default_magic();
        assert_eq!(
            magic,
            b"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
        );
        assert_eq!(
            mask,
            b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
        );
        let (_, mask) = arch_of(&p("linux/s390x")).unwrap().default_magic();
        assert_eq!(&mask[16..18], b"\xff\xfe");
    }

    #[test]
    fn programs_of_other_architectures_are_foreign() {
        let arm64 = p("linux/arm64");
        let amd64_sh = arch_of(&p("linux/amd64")).unwrap().header(ET_DYN);
        let arm64_sh = arch_of(&arm64).unwrap().header(ET_DYN);
        let none = |_: &str| None;
        assert_eq!(
            foreign_program(&arm64, &amd64_sh, &none).unwrap().oci,
            "amd64"
        );
        assert!(foreign_program(&arm64, &arm64_sh, &none).is_none());
        let arm = arch_of(&p("linux/arm/v7")).unwrap().header(ET_EXEC);
        assert!(foreign_program(&arm64, &arm, &none).is_none(), "compat");
        // A script is judged by its interpreter.
        let open = |path: &str| (path == "/bin/sh").then(|| amd64_sh.to_vec());
        assert_eq!(
            foreign_program(&arm64, b"#!/bin/sh -e\necho", &open)
                .unwrap()
                .oci,
            "amd64"
        );
        assert!(foreign_program(&arm64, b"#!/missing\n", &open).is_none());
        assert!(foreign_program(&arm64, b"plain text", &open).is_none());
        assert!(foreign_program(&p("linux/sparc64"), &amd64_sh, &none).is_none());
    }

    #[test]
    fn compat_partners_run_natively() {
        let amd64 = arch_of(&p("linux/amd64")).unwrap();
        assert!(amd64.runs_natively(arch_of(&p("linux/386")).unwrap()));
        assert!(amd64.runs_natively(amd64));
        assert!(!amd64.runs_natively(arch_of(&p("linux/arm64")).unwrap()));
        let arm64 = arch_of(&p("linux/arm64")).unwrap();
        assert!(arm64.runs_natively(arch_of(&p("linux/arm/v7")).unwrap()));
    }
}
