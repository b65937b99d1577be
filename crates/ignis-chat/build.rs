//! Builds the browser page (web/) into OUT_DIR, for the binary to embed.
//!
//! `npm ci` installs the pinned packages of web/package-lock.json when web/node_modules is
//! missing or older than the lockfile, then web/build.mjs bundles the page with esbuild into
//! OUT_DIR/page (asset names carry a content hash). This writes OUT_DIR/page_assets.rs, which
//! src/page.rs includes: the index, its ETag, and every asset with its bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::SystemTime;

const NEEDS_NODE: &str = "ignis-chat builds its page with npm: install Node.js 20 (or newer) and npm \
     (https://nodejs.org), or set NPM and NODE to their paths";

fn main() -> ExitCode {
    for path in [
        "build.rs",
        "web/src",
        "web/build.mjs",
        "web/package.json",
        "web/package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=NPM");
    println!("cargo:rerun-if-env-changed=NODE");
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nerror: {message}\n");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env("OUT_DIR")?);
    let web = manifest.join("web");
    let npm = tool("NPM", "npm");
    let node = tool("NODE", "node");

    if needs_install(&web) {
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&web),
            "npm ci --no-audit --no-fund (in crates/ignis-chat/web)",
        )?;
    }
    let page = out.join("page");
    run(
        Command::new(&node)
            .arg("build.mjs")
            .arg(&page)
            .current_dir(&web),
        "node build.mjs (the page's bundler, in crates/ignis-chat/web)",
    )?;
    write_manifest(&page, &out.join("page_assets.rs"))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// The program `var` names, or `default` (`npm.cmd` on Windows, where npm is a script).
fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        if cfg!(windows) && default == "npm" {
            "npm.cmd".into()
        } else {
            default.into()
        }
    })
}

/// Whether web/node_modules is missing or older than the lockfile. `npm ci` writes
/// node_modules/.package-lock.json last, so its time is that of the last complete install.
fn needs_install(web: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(web.join("node_modules/.package-lock.json"));
    let locked = modified(web.join("package-lock.json")).unwrap_or(SystemTime::UNIX_EPOCH);
    installed.is_none_or(|installed| installed < locked)
}

fn run(command: &mut Command, what: &str) -> Result<Output, String> {
    let output = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{NEEDS_NODE}. `{}` was not found.",
                command.get_program().to_string_lossy()
            )
        } else {
            format!("cannot run {what}: {e}")
        }
    })?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}).\n--- its stderr ---\n{}\n--- its stdout ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end(),
            String::from_utf8_lossy(&output.stdout).trim_end(),
        ));
    }
    Ok(output)
}

/// OUT_DIR/page_assets.rs: `INDEX_HTML`, `INDEX_ETAG` and `ASSETS` (file name and bytes).
fn write_manifest(page: &Path, to: &Path) -> Result<(), String> {
    let index = page.join("index.html");
    let html =
        std::fs::read(&index).map_err(|e| format!("the bundler wrote no index.html: {e}"))?;
    let mut assets: Vec<PathBuf> = std::fs::read_dir(page.join("assets"))
        .map_err(|e| format!("the bundler wrote no assets: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    assets.sort();
    let mut code = String::new();
    let _ = writeln!(code, "// Written by build.rs from web/.");
    let _ = writeln!(
        code,
        "pub(crate) const INDEX_HTML: &str = include_str!({:?});",
        index.display().to_string()
    );
    let _ = writeln!(
        code,
        "pub(crate) const INDEX_ETAG: &str = \"\\\"{:016x}\\\"\";",
        fnv1a(&html)
    );
    let _ = writeln!(code, "pub(crate) const ASSETS: &[(&str, &[u8])] = &[");
    for asset in &assets {
        let name = asset
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("an asset name is not UTF-8: {}", asset.display()))?;
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            asset.display().to_string()
        );
    }
    let _ = writeln!(code, "];");
    std::fs::write(to, code).map_err(|e| format!("cannot write {}: {e}", to.display()))
}

/// A 64-bit FNV-1a hash: the index's ETag, the same for the same bytes in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
