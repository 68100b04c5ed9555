//! `keyrouter --help-man`: one man page for the binary and its subcommands, rendered from the
//! same clap definition as `--help`. clap_mangen renders the sections; the SYNOPSIS (which
//! clap_mangen writes without argument names) and the subcommands (which it would send to
//! `keyrouter-check(1)` pages nobody installs) are written here.

use clap::{Arg, Command};
use clap_mangen::Man;
use roff::{bold, italic, roman, Inline, Roff};

/// The whole page, as roff.
pub fn render(cmd: Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd;
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;

    let mut synopsis = Roff::new();
    synopsis.control("SH", ["SYNOPSIS"]);
    synopsis.text(usage(&cmd, "keyrouter"));
    for sub in cmd.get_subcommands() {
        synopsis.control("br", [] as [&str; 0]);
        synopsis.text(usage(sub, &format!("keyrouter {}", sub.get_name())));
    }
    synopsis.to_writer(&mut out)?;

    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;

    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands() {
        commands.control("SS", [format!("keyrouter {}", sub.get_name()).as_str()]);
        commands.text(usage(sub, &format!("keyrouter {}", sub.get_name())));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            commands.control("PP", [] as [&str; 0]);
            commands.text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set() && a.get_id() != "help") {
            commands.control("TP", [] as [&str; 0]);
            commands.text(arg_usage(arg));
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                commands.text([roman(help.to_string())]);
            }
        }
    }
    commands.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// `name [--flag VALUE] ... POSITIONAL ...`
fn usage(cmd: &Command, name: &str) -> Vec<Inline> {
    let mut line = vec![bold(name)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let required = arg.is_required_set() || arg.is_positional();
        line.push(roman(if required { " " } else { " [" }));
        line.extend(arg_usage(arg));
        if !required {
            line.push(roman("]"));
        }
    }
    line
}

/// `--flag VALUE`, `--flag`, or `VALUE` for a positional argument.
fn arg_usage(arg: &Arg) -> Vec<Inline> {
    let value = || arg.get_value_names().map(|v| v.join(" ")).unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    match (arg.get_short(), arg.get_long()) {
        _ if arg.is_positional() => vec![italic(value())],
        (Some(s), Some(l)) if !takes_value => vec![bold(format!("-{s}")), roman("|"), bold(format!("--{l}"))],
        (_, Some(l)) if takes_value => vec![bold(format!("--{l}")), roman(" "), italic(value())],
        (_, Some(l)) => vec![bold(format!("--{l}"))],
        (Some(s), None) => vec![bold(format!("-{s}"))],
        (None, None) => vec![italic(value())],
    }
}
