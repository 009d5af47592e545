//! Unit tests of `cli` (kept apart so that src/cli.rs stays readable).

use super::*;

/// `(flag, env var, default)` of every setting, read from what `tessera --help` prints.
fn help_rows() -> Vec<(String, String, String)> {
    let help = Cli::command().render_long_help().to_string();
    let (_, section) = help
        .split_once(&format!("\n{SETTINGS}:\n"))
        .expect("the settings heading");
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in section.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            break; // the next heading
        }
        let text = line.trim_start();
        if text.starts_with("--") && line.len() - text.len() < 10 {
            let flag = text.split_whitespace().next().expect("flag");
            blocks.push((flag.to_string(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push_str(text);
            body.push('\n');
        }
    }
    let between = |text: &str, open: &str, close: char| {
        let (_, rest) = text.split_once(open)?;
        Some(rest.split(close).next()?.to_string())
    };
    blocks
        .into_iter()
        .map(|(flag, body)| {
            let env = between(&body, "[env: ", '=').expect("every setting has a variable");
            let default = between(&body, "[default: ", ']')
                .unwrap_or_else(|| panic!("{flag}: no [default: …] in --help"));
            (flag, env, default)
        })
        .collect()
}

// `(flag, env var, default)` of every row of the README's configuration table.
fn readme_rows() -> Vec<(String, String, String)> {
    let readme = include_str!("../README.md");
    let (_, section) = readme
        .split_once("\n## Configuration\n")
        .expect("README has a configuration section");
    let section = section.split("\n## ").next().expect("section");
    section
        .lines()
        .filter(|l| l.starts_with("| `-"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "three columns: {l}");
            let unquote = |s: &str| s.replace('`', "");
            (unquote(cells[1]), unquote(cells[2]), unquote(cells[3]))
        })
        .collect()
}

#[test]
fn the_readme_configuration_table_matches_help() {
    let help = help_rows();
    let readme = readme_rows();
    assert!(help.len() >= 21, "settings in --help: {help:?}");
    for (flag, env, default) in &help {
        let row = readme
            .iter()
            .find(|(f, _, _)| f == flag)
            .unwrap_or_else(|| panic!("README's configuration table lacks {flag}"));
        assert_eq!(&row.1, env, "README's variable for {flag}");
        // The README may add a remark after the default: `60` (at most 600).
        let rest = row.2.strip_prefix(default.as_str());
        assert!(
            rest.is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric())),
            "README's default for {flag} is {:?}, --help says {default:?}",
            row.2
        );
    }
    for (flag, _, _) in &readme {
        assert!(
            help.iter().any(|(f, _, _)| f == flag),
            "README lists {flag}, which is not a setting in --help"
        );
    }
    assert_eq!(readme.len(), help.len(), "one README row per setting");
}

#[test]
fn every_flag_variable_and_file_key_has_one_name() {
    let command = Cli::command();
    let table = toml::to_string(&SettingsArgs::defaults().expect("defaults")).expect("toml");
    for arg in command.get_arguments() {
        if arg.get_help_heading() != Some(SETTINGS) {
            continue;
        }
        let id = arg.get_id().as_str();
        assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()));
        let env = arg.get_env().and_then(|e| e.to_str()).expect("env");
        assert_eq!(env, format!("TESSERA_{}", id.to_uppercase()));
        if !arg.get_default_values().is_empty() {
            assert!(
                table.contains(&format!("{id} = ")),
                "{id} is not a file key"
            );
        }
    }
}
