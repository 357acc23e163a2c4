//! The CSV format of `ringback customers import` and `export`.
//!
//! A header row names the columns, in any order, in any case: `name` and
//! `number` (or `numbers`) are required; `language`, `vip`, `account`,
//! `notes` and `tags` are optional. Every row is one customer:
//!
//! | column | holds |
//! |---|---|
//! | `number` | their number; several separated by `;` |
//! | `numbers` | more numbers, separated by `;` (`number` and `numbers` add up) |
//! | `name` | the name shown to the agent (required) |
//! | `language` | a language tag (`en`, `pt-BR`), or empty |
//! | `vip` | empty, `no`, `false` or `0`: an ordinary customer; `yes` or `true`: a VIP (priority 1); a whole number 0–1000: that priority |
//! | `account` | their account id, or empty |
//! | `notes` | free text (quoted, it may span lines) |
//! | `tags` | labels separated by `;` |
//!
//! Spaces around `;`-separated items and around `language` and `vip` are
//! ignored; `name`, `account` and `notes` are taken as they are. A file
//! may start with a UTF-8 byte order mark. [`write`] produces the same
//! format (every column; `number` is the main number, `numbers` the
//! others), so an export imports back to the same records.

use std::collections::HashMap;

use crate::{
    check_account, check_language, check_name, check_notes, check_priority, check_tag,
    normalize_numbers, Customer, FieldError, TAGS_MAX,
};

/// The columns, in the order [`write`] writes them.
pub const COLUMNS: [&str; 8] = [
    "number", "name", "language", "vip", "account", "notes", "tags", "numbers",
];

/// A bad row: its line in the file (where the record starts) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// A good row: its line and the customer it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line where the record starts.
    pub line: u64,
    /// The customer, every field checked and numbers normalised.
    pub customer: Customer,
}

/// Read a whole file: every row, or every bad row (all of them, in order;
/// nothing is half good). Numbers repeated across rows are bad rows too.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, Vec<RowError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let err = |line: u64, reason: String| vec![RowError { line, reason }];
    let header = match records.next() {
        None => return Err(err(1, "the file is empty: a header row is needed".into())),
        Some(Err(e)) => return Err(err(error_line(&e), format!("not CSV: {e}"))),
        Some(Ok(h)) => h,
    };
    let columns = Columns::of(&header).map_err(|reason| err(1, reason))?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line: error_line(&e),
                    reason: format!("not CSV: {e}"),
                });
                break;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        match columns.customer(&record) {
            Ok(customer) => {
                let mut clash = None;
                for n in &customer.numbers {
                    if let Some(first) = seen.get(n) {
                        clash.get_or_insert(format!("`number`: {n} is also on line {first}"));
                    } else {
                        seen.insert(n.clone(), line);
                    }
                }
                match clash {
                    Some(reason) => errors.push(RowError { line, reason }),
                    None => rows.push(Row { line, customer }),
                }
            }
            Err(reason) => errors.push(RowError { line, reason }),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn error_line(e: &csv::Error) -> u64 {
    e.position().map_or(1, |p| p.line())
}

/// Where each column is in the file.
struct Columns {
    width: usize,
    at: HashMap<&'static str, usize>,
}

impl Columns {
    fn of(header: &csv::ByteRecord) -> Result<Columns, String> {
        let mut at = HashMap::new();
        for (i, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
            let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
                return Err(format!(
                    "unknown column {name:?} (the columns are {})",
                    COLUMNS.join(", ")
                ));
            };
            if at.insert(*known, i).is_some() {
                return Err(format!("column `{known}` appears twice"));
            }
        }
        if !at.contains_key("name") {
            return Err("the header has no `name` column".into());
        }
        if !at.contains_key("number") && !at.contains_key("numbers") {
            return Err("the header has no `number` column".into());
        }
        Ok(Columns {
            width: header.len(),
            at,
        })
    }

    /// The text of `column` in `record` ("" when the file has no such
    /// column).
    fn cell<'r>(&self, record: &'r csv::ByteRecord, column: &str) -> Result<&'r str, String> {
        let Some(&i) = self.at.get(column) else {
            return Ok("");
        };
        std::str::from_utf8(record.get(i).unwrap_or_default())
            .map_err(|_| format!("`{column}` is not UTF-8 text"))
    }

    fn customer(&self, record: &csv::ByteRecord) -> Result<Customer, String> {
        if record.len() != self.width {
            return Err(format!(
                "{} fields, but the header has {}",
                record.len(),
                self.width
            ));
        }
        let f = |e: FieldError| e.to_string();
        let name = self.cell(record, "name")?.to_string();
        check_name(&name).map_err(f)?;
        let number = self.cell(record, "number")?;
        let more = self.cell(record, "numbers")?;
        let numbers = normalize_numbers("number", items(number).chain(items(more))).map_err(f)?;
        let language = Some(self.cell(record, "language")?.trim()).filter(|l| !l.is_empty());
        if let Some(l) = language {
            check_language(l).map_err(f)?;
        }
        let priority = vip(self.cell(record, "vip")?)?;
        let account = Some(self.cell(record, "account")?).filter(|a| !a.is_empty());
        if let Some(a) = account {
            check_account(a).map_err(f)?;
        }
        let notes = self.cell(record, "notes")?.to_string();
        check_notes(&notes).map_err(f)?;
        let tags: Vec<String> = items(self.cell(record, "tags")?)
            .map(str::to_string)
            .collect();
        if tags.len() > TAGS_MAX {
            return Err(format!("`tags`: at most {TAGS_MAX} tags ({})", tags.len()));
        }
        for t in &tags {
            check_tag(t).map_err(f)?;
        }
        Ok(Customer {
            name,
            numbers,
            language: language.map(str::to_string),
            priority,
            account: account.map(str::to_string),
            notes,
            tags,
        })
    }
}

/// `;`-separated items, spaces around them dropped, empty ones skipped.
fn items(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';')
        .map(|s| s.trim_matches(' '))
        .filter(|s| !s.is_empty())
}

/// The `vip` column as a priority.
fn vip(cell: &str) -> Result<i32, String> {
    let v = cell.trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "no" | "false" => Ok(0),
        "yes" | "true" => Ok(1),
        _ => match v.parse::<i64>() {
            Ok(p) => check_priority(p)
                .map_err(|_| format!("`vip`: {cell:?} is outside 0 to {}", crate::PRIORITY_MAX)),
            Err(_) => Err(format!(
                "`vip`: {cell:?} is not yes, no or a priority from 0 to {}",
                crate::PRIORITY_MAX
            )),
        },
    }
}

/// The `vip` cell of a priority: empty for 0, `yes` for 1, else the number.
fn vip_cell(priority: i32) -> String {
    match priority {
        0 => String::new(),
        1 => "yes".into(),
        p => p.to_string(),
    }
}

/// Write `customers` in the format [`parse`] reads, header first.
pub fn write<'a, W: std::io::Write>(
    out: W,
    customers: impl IntoIterator<Item = &'a Customer>,
) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    w.write_record(COLUMNS)?;
    for c in customers {
        let (main, rest) = c
            .numbers
            .split_first()
            .map_or(("", &[][..]), |(m, r)| (m.as_str(), r));
        w.write_record([
            main,
            &c.name,
            c.language.as_deref().unwrap_or(""),
            &vip_cell(c.priority),
            c.account.as_deref().unwrap_or(""),
            &c.notes,
            &c.tags.join(";"),
            &rest.join(";"),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_format() {
        let file = "\u{FEFF}Name,Number,vip,tags,Numbers,language,account,notes\n\
                    Jane Doe,+1 (555) 010-0001,yes, gold ; renewal ,+15550100002;5550100003,en,A-1,\"two\nlines\"\n\
                    Bob,+15550100004,,,,,,\n";
        let rows = parse(file.as_bytes()).expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 4, "the quoted note spans two lines");
        let jane = &rows[0].customer;
        assert_eq!(jane.name, "Jane Doe");
        assert_eq!(
            jane.numbers,
            vec!["+15550100001", "+15550100002", "5550100003"]
        );
        assert_eq!(jane.priority, 1);
        assert_eq!(jane.tags, vec!["gold", "renewal"]);
        assert_eq!(jane.language.as_deref(), Some("en"));
        assert_eq!(jane.account.as_deref(), Some("A-1"));
        assert_eq!(jane.notes, "two\nlines");
        let bob = &rows[1].customer;
        assert_eq!(
            (bob.priority, bob.language.as_ref(), bob.account.as_ref()),
            (0, None, None)
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let file = "number,name,vip\n\
                    +15550100001,Jane,\n\
                    +1 555 CALL,Bob,\n\
                    +15550100002,,\n\
                    +15550100003,Eve,maybe\n\
                    +15550100001,Jane again,\n\
                    +15550100004,Short\n\
                    +15550100005,Fine,7\n";
        let errors = parse(file.as_bytes()).unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7], "{errors:#?}");
        assert!(errors[0].reason.starts_with("`number`:"), "{errors:?}");
        assert!(
            errors[1].reason.starts_with("`name`: must not be empty"),
            "{errors:?}"
        );
        assert!(errors[2].reason.starts_with("`vip`:"), "{errors:?}");
        assert_eq!(errors[3].reason, "`number`: +15550100001 is also on line 2");
        assert_eq!(errors[4].reason, "2 fields, but the header has 3");
    }

    #[test]
    fn header_problems_are_line_1() {
        for (file, why) in [
            ("", "empty"),
            ("name\n", "no `number`"),
            ("number\n", "no `name`"),
            ("number,name,phone\n", "unknown column \"phone\""),
            ("number,name,Name\n", "twice"),
        ] {
            let e = parse(file.as_bytes()).unwrap_err();
            assert_eq!(e.len(), 1, "{file:?}");
            assert_eq!(e[0].line, 1, "{file:?}");
            assert!(e[0].reason.contains(why), "{file:?}: {}", e[0].reason);
        }
        // A header alone is a valid, empty directory.
        assert_eq!(parse(b"number,name\n"), Ok(vec![]));
    }

    #[test]
    fn an_export_reads_back_to_the_same_records() {
        let customers = vec![
            Customer {
                name: " Zoë \"Zee\", Ñandú".into(),
                numbers: vec!["+15550100001".into(), "+15550100002".into()],
                language: Some("pt-BR".into()),
                priority: 7,
                account: Some("ACC;1".into()),
                notes: "first line\r\nsecond, \"quoted\"\ttab".into(),
                tags: vec!["gold".into(), "late payer".into()],
            },
            Customer {
                name: "Bob".into(),
                numbers: vec!["5550100003".into()],
                priority: 1,
                ..Customer::default()
            },
            Customer {
                name: "=cmd".into(),
                numbers: vec!["+15550100004".into()],
                ..Customer::default()
            },
        ];
        let mut out = Vec::new();
        write(&mut out, &customers).expect("write");
        let text = String::from_utf8(out.clone()).expect("UTF-8");
        assert!(text.starts_with("number,name,language,vip,account,notes,tags,numbers\n"));
        let back: Vec<Customer> = parse(&out)
            .expect("reads back")
            .into_iter()
            .map(|r| r.customer)
            .collect();
        assert_eq!(back, customers);
        let mut again = Vec::new();
        write(&mut again, &back).expect("write");
        assert_eq!(again, out);
    }
}
