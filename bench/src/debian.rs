//! A Debian root filesystem with python3, built once with debootstrap and cached.
//!
//! `debootstrap --variant=minbase --include=python3 bookworm` into a temporary sibling of the
//! cache directory, renamed into place only when it succeeded, so an interrupted build never
//! leaves a half rootfs behind. The mirror is the one apt on this host uses (deb822
//! `*.sources` or one-line `sources.list`), so the build works wherever apt does. Runs use the
//! cache read-only (the bundles mark the root read-only and put a tmpfs on /tmp).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::reaper::Reaper;

/// Default cache location.
pub const CACHE_DIR: &str = "/var/cache/moat-bench/debian-rootfs";

const SUITE: &str = "bookworm";
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Returns the cached rootfs, building it first if needed.
pub fn ensure_rootfs(reaper: &Reaper, cache: &Path) -> Result<PathBuf> {
    let marker = marker(cache);
    if marker.is_file() && cache.join("usr/bin/python3").exists() {
        return Ok(cache.to_path_buf());
    }
    let mirror = apt_mirror().unwrap_or_else(|| FALLBACK_MIRROR.to_owned());
    eprintln!("building the Debian rootfs with debootstrap from {mirror} into {} (once)", cache.display());
    let parent = cache.parent().context("cache dir has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let staging = parent.join(format!(".debootstrap-{}", std::process::id()));
    let log_path = parent.join("debootstrap.log");
    let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;

    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", "--include=python3", SUITE]).arg(&staging).arg(&mirror);
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let result =
        reaper.spawn(&mut cmd).context("run debootstrap (apt-get install debootstrap)")?.wait(DEBOOTSTRAP_TIMEOUT);
    match result {
        Ok(0) => {}
        Ok(code) => {
            let _ = fs::remove_dir_all(&staging);
            bail!("debootstrap exited with {code}; see {}", log_path.display());
        }
        Err(err) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(err.context("debootstrap"));
        }
    }
    // Mount points the bundles use; a read-only root cannot grow them later.
    for dir in ["bench", "scratch"] {
        fs::create_dir_all(staging.join(dir)).with_context(|| format!("create {dir} in the rootfs"))?;
    }
    if cache.exists() {
        fs::remove_dir_all(cache).with_context(|| format!("remove stale {}", cache.display()))?;
    }
    fs::rename(&staging, cache).with_context(|| format!("move rootfs to {}", cache.display()))?;
    fs::write(&marker, format!("{SUITE} {mirror}\n")).context("write the cache marker")?;
    Ok(cache.to_path_buf())
}

/// The file whose presence says the cache is complete.
fn marker(cache: &Path) -> PathBuf {
    let mut name = cache.file_name().unwrap_or_default().to_os_string();
    name.push(".complete");
    cache.with_file_name(name)
}

/// The first Debian archive URL in apt's sources (not the security archive).
fn apt_mirror() -> Option<String> {
    let mut texts = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(text);
    }
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("sources" | "list")) {
                texts.extend(fs::read_to_string(&path).ok());
            }
        }
    }
    texts.iter().find_map(|text| mirror_in(text))
}

/// Finds a `.../debian` URL in one sources file, either format.
fn mirror_in(text: &str) -> Option<String> {
    let is_archive = |url: &str| url.starts_with("http") && url.trim_end_matches('/').ends_with("/debian");
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let url = match words.as_slice() {
            ["deb", rest @ ..] => rest.iter().find(|w| !w.starts_with('[')).copied(),
            ["URIs:", uris @ ..] => uris.iter().copied().find(|u| is_archive(u)),
            _ => None,
        };
        if let Some(url) = url.filter(|u| is_archive(u)) {
            return Some(url.trim_end_matches('/').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::mirror_in;

    #[test]
    fn finds_deb822_and_one_line_mirrors() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n";
        assert_eq!(mirror_in(deb822).as_deref(), Some("http://deb.debian.org/debian"));
        let one_line = "deb [arch=amd64] http://ftp.de.debian.org/debian/ bookworm main\n";
        assert_eq!(mirror_in(one_line).as_deref(), Some("http://ftp.de.debian.org/debian"));
        let security = "URIs: http://deb.debian.org/debian-security\n";
        assert_eq!(mirror_in(security), None);
    }
}
