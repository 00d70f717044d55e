//! The fake broker's `loginTemplate`: Flamingo's Go-template fields (`{{.FormURL}}`,
//! `{{.Message}}`, `{{.UsernameID}}`, `{{.PasswordID}}`, also written without the dot, as
//! earlier versions of this crate documented) and `{{if .Field}}...{{else}}...{{end}}`.
//! Values are HTML-escaped. Anything else between `{{` and `}}` is refused when the config is
//! read, so a template never renders half-interpreted.

/// A field of the login form's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    FormUrl,
    Message,
    UsernameId,
    PasswordId,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        match name.strip_prefix('.').unwrap_or(name) {
            "FormURL" => Some(Field::FormUrl),
            "Message" => Some(Field::Message),
            "UsernameID" => Some(Field::UsernameId),
            "PasswordID" => Some(Field::PasswordId),
            _ => None,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    If {
        field: Field,
        then: Vec<Part>,
        otherwise: Vec<Part>,
    },
}

const FIELDS: &str = "{{.FormURL}}, {{.Message}}, {{.UsernameID}} and {{.PasswordID}}";

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// A message naming the first action that is not a known field, `if`, `else` or `end`, or
    /// an unbalanced `{{if}}`/`{{end}}`.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        // Each open `if` collects its branch here: (field, then, otherwise, in else).
        let mut stack: Vec<(Field, Vec<Part>, Vec<Part>, bool)> = Vec::new();
        let mut top: Vec<Part> = Vec::new();
        let mut rest = text;
        fn current<'a>(
            top: &'a mut Vec<Part>,
            stack: &'a mut [(Field, Vec<Part>, Vec<Part>, bool)],
        ) -> &'a mut Vec<Part> {
            match stack.last_mut() {
                Some((_, _, otherwise, true)) => otherwise,
                Some((_, then, _, false)) => then,
                None => top,
            }
        }
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                current(&mut top, &mut stack).push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` without a closing `}}}}`; use {FIELDS}"))?;
            let action = after[..close].trim();
            let shown = format!("{{{{{}}}}}", &after[..close]);
            let words: Vec<&str> = action.split_whitespace().collect();
            match words.as_slice() {
                [name] if Field::parse(name).is_some() => {
                    let field = Field::parse(name).expect("checked above");
                    current(&mut top, &mut stack).push(Part::Field(field));
                }
                ["if", name] if Field::parse(name).is_some() => {
                    let field = Field::parse(name).expect("checked above");
                    stack.push((field, Vec::new(), Vec::new(), false));
                }
                ["else"] => match stack.last_mut() {
                    Some(open) if !open.3 => open.3 = true,
                    _ => return Err(format!("{shown} without an open {{{{if ...}}}}")),
                },
                ["end"] => {
                    let (field, then, otherwise, _) = stack
                        .pop()
                        .ok_or_else(|| format!("{shown} without an open {{{{if ...}}}}"))?;
                    current(&mut top, &mut stack).push(Part::If {
                        field,
                        then,
                        otherwise,
                    });
                }
                _ => {
                    return Err(format!(
                        "unsupported template action {shown}; the fields are {FIELDS}, \
                         and {{{{if .Field}}}}...{{{{else}}}}...{{{{end}}}} tests one"
                    ))
                }
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            current(&mut top, &mut stack).push(Part::Text(rest.to_owned()));
        }
        if !stack.is_empty() {
            return Err("{{if ...}} without its {{end}}".to_owned());
        }
        Ok(Template(top))
    }

    /// Renders the template; `value` gives each field's text, which is HTML-escaped.
    pub(crate) fn render(&self, value: impl Fn(Field) -> String) -> String {
        let mut out = String::new();
        render_parts(&self.0, &value, &mut out);
        out
    }
}

fn render_parts(parts: &[Part], value: &impl Fn(Field) -> String, out: &mut String) {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Field(field) => out.push_str(&escape_html(&value(*field))),
            Part::If {
                field,
                then,
                otherwise,
            } => {
                let branch = if value(*field).is_empty() {
                    otherwise
                } else {
                    then
                };
                render_parts(branch, value, out);
            }
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(field: Field) -> String {
        match field {
            Field::FormUrl => "/core/auth/callback/dev".into(),
            Field::Message => "bad <password>".into(),
            Field::UsernameId => "user".into(),
            Field::PasswordId => String::new(),
        }
    }

    #[test]
    fn go_and_plain_placeholders_render_escaped() {
        let t = Template::parse(
            "<form action=\"{{.FormURL}}\">{{ .Message }}|{{UsernameID}}|{{PasswordID}}</form>",
        )
        .unwrap();
        assert_eq!(
            t.render(values),
            "<form action=\"/core/auth/callback/dev\">bad &lt;password&gt;|user|</form>"
        );
    }

    #[test]
    fn if_else_end_test_a_field() {
        let t = Template::parse(
            "{{if .Message}}<p>{{.Message}}</p>{{end}}{{if .PasswordID}}pw{{else}}no pw{{end}}",
        )
        .unwrap();
        assert_eq!(t.render(values), "<p>bad &lt;password&gt;</p>no pw");
    }

    #[test]
    fn anything_else_is_refused() {
        for (bad, says) in [
            ("{{.Nope}}", "unsupported template action {{.Nope}}"),
            ("{{range .Message}}{{end}}", "unsupported template action"),
            ("{{if .Message}}x", "without its {{end}}"),
            ("x{{end}}", "{{end}} without an open"),
            ("{{else}}", "{{else}} without an open"),
            ("{{.FormURL", "without a closing"),
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
