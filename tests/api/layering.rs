//! The module layering of `src/`: each module imports only modules below
//! it, so that dependencies point one way (CONTRIBUTING.md's code map).

use std::fs;
use std::path::Path;

/// Layers from the bottom; a module may import the modules of the layers
/// below its own (not of its own: those are independent of each other).
const LAYERS: &[&[&str]] = &[
    &["config", "shutdown"],
    &["http", "logging"],
    &["metrics"],
    &["api", "healthcheck"],
    &["startup"],
];

/// Macros are exported at the crate's root (`crate::endpoint!`): the
/// module each is defined in.
const MACROS: &[(&str, &str)] = &[("endpoint", "api"), ("key", "logging")];

/// The module a `crate::` path names: a macro's is where it is defined.
fn module_of(name: &str) -> &str {
    MACROS
        .iter()
        .find(|(macro_name, _)| *macro_name == name)
        .map_or(name, |(_, defined_in)| defined_in)
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/api/layering.rs"))
}

/// Every `crate::<module>` a file names, through `use` or a path.
fn imported(source: &str) -> Vec<String> {
    source
        .match_indices("crate::")
        .map(|(at, _)| {
            source[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|module| !module.is_empty())
        .collect()
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for entry in fs::read_dir(&src).expect("src/") {
        let path = entry.expect("an entry").path();
        let module = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let files: Vec<_> = if path.is_dir() {
            fs::read_dir(&path)
                .expect("a folder")
                .map(|entry| entry.expect("an entry").path())
                .collect()
        } else {
            vec![path.clone()]
        };
        for file in files {
            let source = fs::read_to_string(&file).expect("readable");
            for import in imported(&source) {
                let imported_module = module_of(&import);
                if imported_module != module && layer_of(imported_module) >= layer_of(&module) {
                    violations.push(format!("{} imports crate::{import}", file.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}
