//! Compiles berth's init (src/runtime/init/berth-init.c) into a static
//! binary the daemon carries inside itself (`runtime::isolation`): a static
//! one runs in any image, where berth's own dynamically linked binary would
//! find no libc. Without a C compiler and a static libc the init is left
//! empty and `--init` is refused with the reason.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "src/runtime/init/berth-init.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("berth-init");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let built = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg(source)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        println!("cargo:warning=cannot build {source} with `{cc} -static`: --init will be refused");
        std::fs::write(&out, b"").expect("write the empty init");
    }
}
