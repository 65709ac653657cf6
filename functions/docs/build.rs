//! Prepares the documentation assets the `docs` binary embeds.
//!
//! - Swagger UI: the files `/docs/` needs, taken from the Swagger UI release that the
//!   `utoipa-swagger-ui-vendored` crate packages (no network, no copy in this repository).
//! - ReDoc: the standalone bundle checked in under `assets/`.
//!
//! Text assets are gzip-compressed here, once: the binary carries ~1 MB instead of ~3.3 MB
//! (what a Lambda cold start loads), and browsers are sent the gzip bytes as they are. The
//! generated `assets.rs` is a table of [`Asset`]s (see `src/assets.rs`).

use std::{
    env,
    fmt::Write as _,
    fs,
    io::{Cursor, Read, Write},
    path::PathBuf,
};

/// Route under which each asset is served, where it comes from, and its media type.
const SWAGGER: &[(&str, &str, &str)] = &[
    (
        "/docs/swagger-ui.css",
        "swagger-ui.css",
        "text/css; charset=utf-8",
    ),
    ("/docs/index.css", "index.css", "text/css; charset=utf-8"),
    (
        "/docs/swagger-ui-bundle.js",
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/docs/swagger-ui-standalone-preset.js",
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
    ),
    ("/docs/favicon-32x32.png", "favicon-32x32.png", "image/png"),
    ("/docs/favicon-16x16.png", "favicon-16x16.png", "image/png"),
];

const REDOC: (&str, &str, &str) = (
    "/redoc/redoc.standalone.js",
    "assets/redoc.standalone.js",
    "text/javascript; charset=utf-8",
);

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", REDOC.1);
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let mut zip =
        zip::ZipArchive::new(Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED))?;
    let mut assets = Vec::new();
    for &(route, file, content_type) in SWAGGER {
        let name = zip
            .file_names()
            .filter_map(Result::ok)
            .find(|name| name.ends_with(&format!("/dist/{file}")))
            .ok_or_else(|| format!("{file} is not in the vendored Swagger UI archive"))?
            .into_owned();
        let mut bytes = Vec::new();
        zip.by_name(&name)?.read_to_end(&mut bytes)?;
        assets.push((route, content_type, bytes));
    }
    let (route, file, content_type) = REDOC;
    assets.push((route, content_type, fs::read(file)?));
    assets.sort_by_key(|&(route, _, _)| route);

    let mut table = String::from("static ASSETS: &[Asset] = &[\n");
    for (i, (route, content_type, bytes)) in assets.iter().enumerate() {
        // PNGs are compressed already; everything else is text.
        let gzipped = !content_type.starts_with("image/");
        let stored = if gzipped { gzip(bytes)? } else { bytes.clone() };
        let path = out.join(format!("asset-{i}"));
        fs::write(&path, &stored)?;
        writeln!(
            table,
            "    Asset {{ route: {route:?}, content_type: {content_type:?}, \
             bytes: include_bytes!({path:?}), gzipped: {gzipped}, etag: \"W/\\\"{:016x}\\\"\" }},",
            fnv1a(bytes)
        )?;
    }
    table.push_str("];\n");
    fs::write(out.join("assets.rs"), table)?;
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// The ETag: FNV-1a over the uncompressed bytes, as a weak validator (the same value names
/// the gzip and the identity encodings, which strong validators may not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
