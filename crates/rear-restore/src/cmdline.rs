//! The kernel command line of the rescue system, as PID 1 reads it from `/proc/cmdline`.
//!
//! Stage: restore (boot). Input: the text of `/proc/cmdline`. Output: [`Cmdline`], the options
//! `/init` acts on. [`parse`] is pure; `/init` reads the file and prints
//! [`Cmdline::warnings`].
//!
//! Words are split the way the kernel's `next_arg()` (lib/cmdline.c) does: whitespace separates
//! parameters except inside double quotes, `name="a b"` has the value `a b`, and `--` ends the
//! kernel's parameters. Recognised options:
//!
//! | option | meaning |
//! |---|---|
//! | `console=NAME[,OPTIONS]` | may repeat; the last one is `/dev/console` (Documentation/admin-guide/serial-console.rst) |
//! | `rear.auto` | start the recovery without asking |
//! | `rear.shell` | only start the shell (wins over `rear.auto`) |
//! | `rear.debug` | print every step of `/init` |
//! | `rear.net=dhcp\|static\|none` | how to configure the network (default: the image's setting, `static` = the saved configuration) |
//! | `rear.ssh=0\|1` | start sshd (default: the image's setting) |
//! | `ip=...` | the kernel's own format ([`crate::net::ip`]): a static address or DHCP |
//!
//! A flag may also be written `rear.auto=1`, `=0`, `=yes`, `=no`, `=on`, `=off`, `=true`,
//! `=false`. Unknown options are ignored; a bad value of a `rear.*` option becomes a warning
//! and the option keeps its default. `rear.net` and `rear.ssh` are `None` when not given, so
//! the image's own defaults (`/etc/rear/rescue.json`) apply.

use crate::net::ip::IpConfig;
use rear_model::rescue::Net;

/// A problem with one option of the command line; the option keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `rear.*` option has a value outside its allowed set.
    #[error("kernel option {option}={value}: expected {expected}; using the default")]
    BadValue {
        /// The option name, e.g. `rear.net`.
        option: String,
        /// The value given on the command line.
        value: String,
        /// The allowed values, for the message.
        expected: &'static str,
    },
    /// A bad `ip=` value; the network falls back to DHCP.
    #[error("kernel option {0}; trying DHCP instead")]
    BadIp(#[from] crate::net::ip::Error),
}

/// Parity of a serial console (`n`, `o`, `e` in `console=ttyS0,115200n8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parity {
    /// No parity bit (`n`, the kernel's default).
    #[default]
    None,
    /// Odd parity (`o`).
    Odd,
    /// Even parity (`e`).
    Even,
}

/// Line settings of a serial console: `BBBBPNF` in the kernel's notation (baud, parity, bits,
/// flow control `r`), e.g. `115200n8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SerialOptions {
    /// The baud rate, when given.
    pub baud: Option<u32>,
    /// The parity.
    pub parity: Parity,
    /// Data bits (5 to 8), when given.
    pub bits: Option<u8>,
    /// RTS/CTS flow control (`r`).
    pub rtscts: bool,
}

/// One `console=` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// The device name without `/dev/`, e.g. `ttyS0`, `tty0`, `hvc0`.
    pub name: String,
    /// Everything after the first comma, e.g. `115200n8`; empty when absent.
    pub options: String,
}

impl Console {
    /// Whether this is a virtual terminal of the kernel (`tty` followed by digits only), as
    /// opposed to a serial or hypervisor console.
    pub fn is_vt(&self) -> bool {
        is_vt_name(&self.name)
    }

    /// The device node to write messages to: `/dev/NAME` (`tty0` is the foreground VT).
    pub fn device(&self) -> String {
        format!("/dev/{}", self.name)
    }

    /// The device node to run a shell on: like [`Console::device`], except that `tty0`
    /// (whatever VT is in the foreground) becomes `tty1`, the VT shown after boot.
    pub fn shell_device(&self) -> String {
        shell_device_for(&self.name)
    }

    /// The line settings from [`Console::options`]; all defaults for a VT or when absent.
    pub fn serial_options(&self) -> SerialOptions {
        parse_serial_options(&self.options)
    }
}

/// Whether a console name is a kernel virtual terminal (`tty`, then digits only).
pub fn is_vt_name(name: &str) -> bool {
    name.strip_prefix("tty")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The device node a shell runs on for a console name: `/dev/NAME`, with `tty0` mapped to
/// `/dev/tty1` (a shell on tty0 would follow VT switches).
pub fn shell_device_for(name: &str) -> String {
    if name == "tty0" {
        "/dev/tty1".to_owned()
    } else {
        format!("/dev/{name}")
    }
}

/// The options of the rescue system found on the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    /// The `console=` entries in order; the last one is `/dev/console`.
    pub consoles: Vec<Console>,
    /// `rear.auto`: recover without asking.
    pub auto: bool,
    /// `rear.shell`: only start the shell, even with `rear.auto`.
    pub shell: bool,
    /// `rear.debug`: print every step.
    pub debug: bool,
    /// `rear.net=`, when given.
    pub net: Option<Net>,
    /// `rear.ssh=`: start sshd, when given.
    pub ssh: Option<bool>,
    /// `ip=`, when given. A malformed value is a warning and becomes `ip=dhcp`.
    pub ip: Option<IpConfig>,
    /// Bad values met while parsing, one line each for the console.
    pub warnings: Vec<Error>,
}

impl Cmdline {
    /// The console that `/dev/console` is: the last `console=` entry.
    pub fn primary_console(&self) -> Option<&Console> {
        self.consoles.last()
    }
}

/// Splits a command line into `(name, value)` pairs like the kernel's `next_arg()`:
/// quotes group whitespace and are dropped around a value (or a whole quoted parameter);
/// a parameter without `=` has no value; `--` ends the list (the rest belongs to init).
pub fn split(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let mut in_quote = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if c.is_whitespace() && !in_quote {
                end = i;
                break;
            }
            if c == '"' {
                in_quote = !in_quote;
            }
        }
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        // A fully quoted parameter ("a=b c") loses its outer quotes, as in the kernel.
        let word = match word.strip_prefix('"') {
            Some(w) => w.strip_suffix('"').unwrap_or(w),
            None => word,
        };
        match word.split_once('=') {
            Some((name, value)) => {
                let value = match value.strip_prefix('"') {
                    Some(v) => v.strip_suffix('"').unwrap_or(v),
                    None => value,
                };
                out.push((name.to_owned(), Some(value.to_owned())));
            }
            None => out.push((word.to_owned(), None)),
        }
    }
    out
}

/// Parses the text of `/proc/cmdline` into the options `/init` acts on. Never fails: problems
/// are collected in [`Cmdline::warnings`].
pub fn parse(line: &str) -> Cmdline {
    let mut c = Cmdline::default();
    for (name, value) in split(line) {
        let value = value.as_deref();
        match name.as_str() {
            "console" => {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    let (name, options) = v.split_once(',').unwrap_or((v, ""));
                    c.consoles.push(Console {
                        name: name.to_owned(),
                        options: options.to_owned(),
                    });
                }
            }
            "rear.auto" => flag(&mut c.auto, &name, value, &mut c.warnings),
            "rear.shell" => flag(&mut c.shell, &name, value, &mut c.warnings),
            "rear.debug" => flag(&mut c.debug, &name, value, &mut c.warnings),
            "rear.ssh" => {
                let mut on = c.ssh.unwrap_or(true);
                let before = c.warnings.len();
                flag(&mut on, &name, value, &mut c.warnings);
                if c.warnings.len() == before {
                    c.ssh = Some(on);
                }
            }
            "ip" => match crate::net::ip::parse(value.unwrap_or_default()) {
                Ok(ip) => c.ip = Some(ip),
                Err(e) => {
                    c.warnings.push(Error::BadIp(e));
                    c.ip = Some(IpConfig::Dhcp {
                        device: None,
                        hostname: None,
                    });
                }
            },
            "rear.net" => match value {
                Some("dhcp") => c.net = Some(Net::Dhcp),
                Some("static") => c.net = Some(Net::Static),
                Some("none") => c.net = Some(Net::None),
                _ => c.warnings.push(Error::BadValue {
                    option: name.clone(),
                    value: value.unwrap_or_default().to_owned(),
                    expected: "dhcp, static or none",
                }),
            },
            _ => {}
        }
    }
    c
}

/// Sets a boolean option: a bare flag means on; a bad value keeps the default and warns.
fn flag(slot: &mut bool, name: &str, value: Option<&str>, warnings: &mut Vec<Error>) {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("1" | "yes" | "y" | "on" | "true") => *slot = true,
        Some("0" | "no" | "n" | "off" | "false") => *slot = false,
        Some(_) => warnings.push(Error::BadValue {
            option: name.to_owned(),
            value: value.unwrap_or_default().to_owned(),
            expected: "0 or 1",
        }),
    }
}

/// Parses `BBBBPNF` (e.g. `115200n8`, `9600`, `38400e7r`). Anything unreadable yields the
/// defaults for the remaining fields, as the 8250 driver does.
fn parse_serial_options(s: &str) -> SerialOptions {
    let mut o = SerialOptions::default();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    o.baud = s[..digits].parse().ok().filter(|&b| b > 0);
    let mut rest = s[digits..].chars();
    match rest.next() {
        Some('o') => o.parity = Parity::Odd,
        Some('e') => o.parity = Parity::Even,
        _ => {}
    }
    if let Some(bits) = rest.next().and_then(|c| c.to_digit(10)) {
        o.bits = u8::try_from(bits).ok().filter(|b| (5..=8).contains(b));
    }
    o.rtscts = rest.next() == Some('r');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_kernel_quoting() {
        let got = split(r#"  root=/dev/sda1 foo="a b" "bar=c d" ro  quiet x="" -- init args"#);
        let want: Vec<(String, Option<String>)> = vec![
            ("root".into(), Some("/dev/sda1".into())),
            ("foo".into(), Some("a b".into())),
            ("bar".into(), Some("c d".into())),
            ("ro".into(), None),
            ("quiet".into(), None),
            ("x".into(), Some(String::new())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn split_empty() {
        assert!(split("").is_empty());
        assert!(split(" \n").is_empty());
    }

    #[test]
    fn parse_defaults() {
        let c = parse("BOOT_IMAGE=/vmlinuz ro quiet\n");
        assert_eq!(c, Cmdline::default());
        assert_eq!(c.ssh, None);
        assert_eq!(c.net, None);
        assert_eq!(c.ip, None);
        assert!(c.primary_console().is_none());
    }

    #[test]
    fn parse_consoles_last_is_primary() {
        let c = parse("console=tty0 console=ttyS0,115200n8 console=");
        assert_eq!(c.consoles.len(), 2);
        assert_eq!(c.consoles[0].name, "tty0");
        assert_eq!(c.consoles[0].options, "");
        let p = c.primary_console().map(|c| c.name.as_str());
        assert_eq!(p, Some("ttyS0"));
        assert_eq!(c.consoles[1].options, "115200n8");
    }

    #[test]
    fn parse_rear_options() {
        let c = parse("rear.auto rear.shell=1 rear.debug=yes rear.net=dhcp rear.ssh=0");
        assert!(c.auto && c.shell && c.debug);
        assert_eq!(c.ssh, Some(false));
        assert_eq!(c.net, Some(Net::Dhcp));
        assert!(c.warnings.is_empty());
        assert_eq!(parse("rear.net=none").net, Some(Net::None));
        assert_eq!(parse("rear.ssh").ssh, Some(true));
        assert!(!parse("rear.auto=off").auto);
    }

    #[test]
    fn parse_bad_values_warn_and_keep_default() {
        let c = parse(r#"rear.net=wifi rear.ssh=maybe rear.auto="x y" rear.net"#);
        assert_eq!(c.net, None);
        assert_eq!(c.ssh, None);
        assert!(!c.auto);
        assert_eq!(c.warnings.len(), 4);
        assert_eq!(
            c.warnings[0].to_string(),
            "kernel option rear.net=wifi: expected dhcp, static or none; using the default"
        );
        assert_eq!(
            c.warnings[2],
            Error::BadValue {
                option: "rear.auto".into(),
                value: "x y".into(),
                expected: "0 or 1",
            }
        );
    }

    #[test]
    fn parse_ip_static_and_bad_falls_back_to_dhcp() {
        let c = parse("rear.net=static ip=192.0.2.9::192.0.2.1:255.255.255.0::eth0:off");
        assert!(
            matches!(&c.ip, Some(IpConfig::Static(s)) if s.address.to_string() == "192.0.2.9/24")
        );
        assert!(c.warnings.is_empty());
        let c = parse("ip=192.0.2.300::::::off");
        assert_eq!(
            c.ip,
            Some(IpConfig::Dhcp {
                device: None,
                hostname: None
            })
        );
        assert_eq!(
            c.warnings[0].to_string(),
            "kernel option ip=192.0.2.300::::::off: client-ip \"192.0.2.300\" is not an IPv4 address; trying DHCP instead"
        );
        assert_eq!(
            parse("ip=dhcp").ip,
            Some(IpConfig::Dhcp {
                device: None,
                hostname: None
            })
        );
        assert_eq!(parse("ip=off").ip, Some(IpConfig::Off));
    }

    #[test]
    fn parse_ignores_unknown_and_after_dashes() {
        let c = parse("rear.unknown=3 rearauto -- rear.auto");
        assert_eq!(c, Cmdline::default());
    }

    #[test]
    fn is_vt_name_cases() {
        assert!(is_vt_name("tty0"));
        assert!(is_vt_name("tty12"));
        assert!(!is_vt_name("tty"));
        assert!(!is_vt_name("ttyS0"));
        assert!(!is_vt_name("hvc0"));
    }

    #[test]
    fn shell_device_for_tty0_is_tty1() {
        assert_eq!(shell_device_for("tty0"), "/dev/tty1");
        assert_eq!(shell_device_for("tty3"), "/dev/tty3");
        assert_eq!(shell_device_for("ttyS0"), "/dev/ttyS0");
        let c = Console {
            name: "tty0".into(),
            options: String::new(),
        };
        assert_eq!(c.device(), "/dev/tty0");
        assert_eq!(c.shell_device(), "/dev/tty1");
    }

    #[test]
    fn serial_options_forms() {
        let o = parse_serial_options("115200n8");
        assert_eq!(
            o,
            SerialOptions {
                baud: Some(115_200),
                parity: Parity::None,
                bits: Some(8),
                rtscts: false
            }
        );
        let o = parse_serial_options("38400e7r");
        assert_eq!(o.baud, Some(38_400));
        assert_eq!(o.parity, Parity::Even);
        assert_eq!(o.bits, Some(7));
        assert!(o.rtscts);
        assert_eq!(parse_serial_options(""), SerialOptions::default());
        assert_eq!(parse_serial_options("9600").baud, Some(9600));
        assert_eq!(parse_serial_options("0n9").bits, None);
        assert_eq!(parse_serial_options("io").baud, None);
    }
}
