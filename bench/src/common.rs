//! Small helpers shared by `callback-dispatch` and `dialplan-ops`: a
//! keep-alive HTTP/1.1 client for ringback's API, percentiles, `--key value`
//! arguments, and the server's Prometheus gauges.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `--key value` pairs (and bare `--flag`s as "true").
pub struct Args(HashMap<String, String>);

impl Args {
    /// Parse `std::env::args`; `usage` is printed for `--help` or a stray word.
    pub fn parse(usage: &str) -> Args {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1).peekable();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else {
                eprintln!("unexpected argument `{a}`\n{usage}");
                std::process::exit(2);
            };
            if key == "help" {
                eprintln!("{usage}");
                std::process::exit(0);
            }
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "true".to_string(),
            };
            map.insert(key.to_string(), value);
        }
        Args(map)
    }

    /// A string option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required option (exit 2 without it).
    pub fn need(&self, key: &str) -> String {
        match self.get(key) {
            Some(v) => v.to_string(),
            None => {
                eprintln!("missing --{key}");
                std::process::exit(2);
            }
        }
    }

    /// A parsed option with a default (exit 2 when unparseable).
    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        match self.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("--{key}: cannot parse `{v}`");
                std::process::exit(2);
            }),
        }
    }
}

/// One keep-alive HTTP/1.1 connection to ringback's API.
pub struct Http {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

/// An HTTP answer.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    /// Connect (TCP_NODELAY, 30 s read timeout).
    pub fn connect(addr: SocketAddr) -> std::io::Result<Http> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Http {
            addr,
            reader: BufReader::new(s),
        })
    }

    /// Write a request (one `write` call) without waiting for the answer.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> std::io::Result<()> {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}{ctype}Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes())
    }

    /// Read one answer (Content-Length or chunked bodies).
    pub fn recv(&mut self) -> std::io::Result<Answer> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    length = v.trim().parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk"))?;
                let mut chunk = vec![0u8; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Send and wait; reconnects once if the server closed an idle connection.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> std::io::Result<Answer> {
        let first = self
            .send(method, path, token, body)
            .and_then(|()| self.recv());
        match first {
            Ok(a) => Ok(a),
            Err(_) => {
                *self = Http::connect(self.addr)?;
                self.send(method, path, token, body)?;
                self.recv()
            }
        }
    }
}

/// Value of one Prometheus sample, e.g. `ringback_callbacks{state="scheduled"}`.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok())?
    })
}

/// The named samples of ringback's `/metrics` (those it exports).
pub fn scrape(
    api: SocketAddr,
    names: &[&'static str],
) -> std::collections::BTreeMap<&'static str, f64> {
    let text = Http::connect(api)
        .and_then(|mut h| h.call("GET", "/metrics", None, ""))
        .map(|a| a.body)
        .unwrap_or_default();
    names
        .iter()
        .filter_map(|&m| Some((m, metric(&text, m)?)))
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// n, min, mean, p50, p90, p99, max of some values (sorted in place).
pub fn summary(values: &mut [f64]) -> Value {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "n": n,
        "min": r(values.first().copied().unwrap_or(f64::NAN)),
        "mean": r(mean),
        "p50": r(pct(values, 50.0)),
        "p90": r(pct(values, 90.0)),
        "p99": r(pct(values, 99.0)),
        "max": r(values.last().copied().unwrap_or(f64::NAN)),
    })
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Write pretty JSON to `path` (and say so on stderr).
pub fn write_json(path: &str, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    if let Err(e) = std::fs::write(path, text + "\n") {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {path}");
}
