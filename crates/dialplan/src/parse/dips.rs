//! The `lookup` and `say` nodes: data dips and what is read out from them.

use std::collections::BTreeMap;

use serde_spanned::Spanned;
use toml::de::DeValue;

use super::{type_name, valid_prompt_name, valid_var_name, EdgeKind, Parser, Tc};
use crate::lookup::valid_path;
use crate::model::*;
use crate::say::{parse_item, SayItem};

const LOOKUP_KEYS: &[&str] = &["type", "lookup", "vars", "next", "fallback"];
const SAY_KEYS: &[&str] = &["type", "say", "next", "fallback"];

impl<'i> Parser<'_, '_> {
    pub(super) fn lookup(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, LOOKUP_KEYS);
        let lookup = self
            .req_string(tc, "lookup", "the name of a [lookups.<name>] in ringback.toml")
            .and_then(|l| {
                if valid_prompt_name(l.get_ref()) {
                    self.d.lookup_refs.push(l.clone());
                    Some(l.into_inner())
                } else {
                    self.sink.error(
                        &l.span(),
                        format!(
                            "invalid lookup name `{}` in node `{n}`: use letters, digits, `-` and `_` (a [lookups.<name>] of ringback.toml)",
                            l.get_ref()
                        ),
                    );
                    None
                }
            });
        let vars = self.lookup_vars(tc, n);
        let next = self.target(tc, n, "next", true, EdgeKind::Silent);
        let fallback = self.target(tc, n, "fallback", true, EdgeKind::Silent);
        Some(Node::Lookup(LookupNode {
            lookup: lookup?,
            vars: vars?,
            next: next??,
            fallback: fallback??,
        }))
    }

    /// `vars = { status = "status", ship_date = "shipping.date" }`.
    fn lookup_vars(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<BTreeMap<String, String>> {
        let expected = "a table of variable = \"path.in.the.answer\"";
        let Some(v) = tc.get("vars") else {
            return Some(BTreeMap::new());
        };
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(tc, "vars", v, expected);
            return None;
        };
        let mut vars = Some(BTreeMap::new());
        for (k, val) in t.iter() {
            let key: &str = k.get_ref();
            if !valid_var_name(key) {
                self.sink.error(
                    &k.span(),
                    format!(
                        "invalid variable name `{key}` in node `{n}`: use lowercase letters, digits and `_`, starting with a letter or `_`"
                    ),
                );
                vars = None;
                continue;
            }
            match val.get_ref() {
                DeValue::String(path) if valid_path(path) => {
                    self.d.var_defs.insert(key.to_string());
                    if let Some(m) = vars.as_mut() {
                        m.insert(key.to_string(), path.to_string());
                    }
                }
                DeValue::String(path) => {
                    self.sink.error(
                        &val.span(),
                        format!(
                            "invalid path `{path}` for variable `{key}` of node `{n}`: keys of the JSON answer separated by dots, e.g. \"shipping.date\" or \"items.0.sku\""
                        ),
                    );
                    vars = None;
                }
                other => {
                    self.sink.error(
                        &val.span(),
                        format!(
                            "variable `{key}` of node `{n}` must name a path in the JSON answer (a string like \"shipping.date\"), found {}",
                            type_name(other)
                        ),
                    );
                    vars = None;
                }
            }
        }
        vars
    }

    pub(super) fn say(&mut self, tc: &Tc<'_, 'i>, n: &str) -> Option<Node> {
        self.keys(tc, SAY_KEYS);
        let expected = "a list of prompt names and {variable:format} entries";
        let items = match tc.get("say") {
            None => {
                self.missing(tc, "say", expected);
                None
            }
            Some(v) => match v.get_ref() {
                DeValue::Array(a) if a.is_empty() => {
                    self.sink.error(
                        &v.span(),
                        format!("`say` of node `{n}` is empty: say at least one thing"),
                    );
                    None
                }
                DeValue::Array(a) => {
                    let mut items = Some(Vec::new());
                    for item in a.iter() {
                        let got = self.say_item(item, n);
                        match (got, items.as_mut()) {
                            (Some(i), Some(list)) => list.push(i),
                            (Some(_), None) => {}
                            (None, _) => items = None,
                        }
                    }
                    items
                }
                _ => {
                    self.wrong_type(tc, "say", v, expected);
                    None
                }
            },
        };
        let next = self.target(tc, n, "next", false, EdgeKind::Silent);
        let fallback = self.target(tc, n, "fallback", false, EdgeKind::Silent);
        Some(Node::Say(Say {
            items: items?,
            next: next?,
            fallback: fallback?,
        }))
    }

    fn say_item(&mut self, item: &Spanned<DeValue<'i>>, n: &str) -> Option<SayItem> {
        let DeValue::String(s) = item.get_ref() else {
            self.sink.error(
                &item.span(),
                format!(
                    "`say` of node `{n}` must list prompt names and {{variable:format}} entries (strings), found {}",
                    type_name(item.get_ref())
                ),
            );
            return None;
        };
        match parse_item(s) {
            Err(e) => {
                self.sink.error(&item.span(), format!("{e} (node `{n}`)"));
                None
            }
            Ok(SayItem::Prompt(p)) => {
                if !valid_prompt_name(&p) {
                    self.sink.error(
                        &item.span(),
                        format!(
                            "invalid prompt name `{p}` in `say` of node `{n}`: use letters, digits, `-` and `_`, or {{variable:format}} to speak a variable"
                        ),
                    );
                    return None;
                }
                self.d
                    .prompt_refs
                    .push(Spanned::new(item.span(), p.clone()));
                Some(SayItem::Prompt(p))
            }
            Ok(SayItem::Var { var, format }) => {
                if !valid_var_name(&var) {
                    self.sink.error(
                        &item.span(),
                        format!(
                            "invalid variable name `{var}` in `say` of node `{n}`: use lowercase letters, digits and `_`"
                        ),
                    );
                    return None;
                }
                self.d.var_uses.push(Spanned::new(item.span(), var.clone()));
                self.d.format_refs.push((item.span(), format));
                Some(SayItem::Var { var, format })
            }
        }
    }
}
