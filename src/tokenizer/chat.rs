//! Chat templates: the model's own Jinja template rendered with minijinja.

use minijinja::{Environment, ErrorKind, Value, context};
use serde::Serialize;

use super::template_sandbox;
use crate::error::{Error, Result};

/// One message of a conversation.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// Template instructions a chat prompt may cost (minijinja's fuel). A real template spends tens
/// per message; a hostile one (nested loops over `range`) is stopped here instead of running for
/// hours.
const TEMPLATE_FUEL: u64 = 5_000_000;

/// Most bytes a rendered chat prompt may have: about 250k tokens of text, beyond any small
/// model's context (128k tokens of English are ~550 KB), so only a runaway template reaches it.
/// It also bounds the tokenizing that follows: `tokenizers`' pipeline takes about a second for
/// 4 MB (fuzzed templates blowing prompts up to 5 MB, then 4 MiB, took 1-2 s).
const MAX_RENDERED_BYTES: usize = 1 << 20;

/// The rendered prompt, refusing to grow past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// Renders `template` for `messages` as transformers' `apply_chat_template` would. A template
/// that refuses a system turn (Gemma 2's raises "System role not supported") gets the system
/// text folded into the first user turn instead, as Gemma 3's template does itself.
pub fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    // The child's answer: a tag byte (b'+' rendered, b'-' refused), then the text.
    let answer = template_sandbox::run(MAX_RENDERED_BYTES + 1, || {
        let result = render_in_process(
            template,
            messages,
            add_generation_prompt,
            bos_token,
            eos_token,
        );
        let (tag, text) = match result {
            Ok(text) => (b'+', text),
            Err(Error::Template(why)) => (b'-', why),
            Err(other) => (b'-', other.to_string()),
        };
        let mut bytes = Vec::with_capacity(1 + text.len());
        bytes.push(tag);
        bytes.extend_from_slice(text.as_bytes());
        bytes
    })
    .map_err(|why| Error::Template(format!("rendering stopped: {why}")))?;
    let text = String::from_utf8_lossy(answer.get(1..).unwrap_or_default()).into_owned();
    match answer.first() {
        Some(b'+') => Ok(text),
        Some(b'-') => Err(Error::Template(text)),
        _ => Err(Error::Template("rendering gave no answer".into())),
    }
}

/// [`render`] in this process, bounded by fuel and output size only.
fn render_in_process(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let result = render_as_given(
        template,
        messages,
        add_generation_prompt,
        bos_token,
        eos_token,
    );
    match (result, messages) {
        // A template that ran out of fuel or room is not retried: it would again.
        (Err(Refusal::Limit(e)), _) => Err(e),
        (Err(Refusal::Failed(e)), [system, user, rest @ ..])
            if system.role == "system" && user.role == "user" =>
        {
            let mut folded = vec![ChatMessage::new(
                "user",
                &format!("{}\n\n{}", system.content, user.content),
            )];
            folded.extend_from_slice(rest);
            render_as_given(
                template,
                &folded,
                add_generation_prompt,
                bos_token,
                eos_token,
            )
            .map_err(|_| e)
        }
        (Err(Refusal::Failed(e)), _) => Err(e),
        (Ok(text), _) => Ok(text),
    }
}

/// Why a template did not render.
enum Refusal {
    /// It ran past [`TEMPLATE_FUEL`] or [`MAX_RENDERED_BYTES`].
    Limit(Error),
    /// Anything else (a syntax error, a raised exception, …).
    Failed(Error),
}

/// [`render`] of exactly `messages`.
fn render_as_given(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> std::result::Result<String, Refusal> {
    let failed = |e: minijinja::Error| Refusal::Failed(Error::Template(e.to_string()));
    let mut env = Environment::new();
    // transformers renders templates with these two Jinja options on.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Templates written for Python call str methods (`.strip()`, `.startswith()`, …).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.set_fuel(Some(TEMPLATE_FUEL));
    if let Some(statement) = namespace_cycle(template) {
        return Err(Refusal::Limit(Error::Template(format!(
            "the chat template stores a namespace inside a namespace (`{statement}`): printing such a cycle never ends"
        ))));
    }
    env.add_template("chat", template).map_err(failed)?;
    let tmpl = env.get_template("chat").map_err(failed)?;
    let mut out = BoundedOutput::default();
    let rendered = tmpl.render_captured_to(
        context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        },
        &mut out,
    );
    let limit = |what: String| Refusal::Limit(Error::Template(what));
    match rendered {
        Ok(_) => String::from_utf8(out.bytes).map_err(|_| {
            Refusal::Failed(Error::Template(
                "the chat template wrote invalid UTF-8".into(),
            ))
        }),
        Err(_) if out.overflowed => Err(limit(format!(
            "the chat template's output passed {} MiB",
            MAX_RENDERED_BYTES >> 20
        ))),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(limit(format!(
            "the chat template ran more than {TEMPLATE_FUEL} instructions (a loop that does not end?)"
        ))),
        Err(e) => Err(failed(e)),
    }
}

/// The first `{% set … %}` of `template` that stores a namespace (a variable made by
/// `namespace(…)`, or an alias of one) in a namespace's attribute, if any. minijinja follows
/// such a cycle without end when it prints or compares the value, overflowing the stack. Only
/// direct and aliased stores are seen: a namespace passed through a loop variable or a macro
/// argument is not (see the README's fuzzing notes).
fn namespace_cycle(template: &str) -> Option<&str> {
    let mut namespaces: Vec<&str> = Vec::new();
    for statement in statements(template) {
        let body = statement.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let Some(assignment) = body
            .strip_prefix("set")
            .filter(|rest| rest.starts_with(char::is_whitespace))
        else {
            continue;
        };
        let Some((target, value)) = assignment.split_once('=') else {
            continue;
        };
        let target = target.trim();
        let value = value.trim_start();
        let constructs = value
            .strip_prefix("namespace")
            .is_some_and(|rest| rest.trim_start().starts_with('('));
        let holds_namespace = constructs || bare_names(value).any(|n| namespaces.contains(&n));
        match target.split_once('.') {
            Some(_) if holds_namespace => return Some(body),
            None if holds_namespace => namespaces.push(target),
            _ => {}
        }
    }
    None
}

/// The insides of a template's `{% … %}` tags, in order: `{{ … }}` and `{# … #}` are skipped,
/// and a tag ends only at a `%}` outside string literals.
fn statements(template: &str) -> Vec<&str> {
    let bytes = template.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let close: &[u8] = match &bytes[i..i + 2] {
            b"{%" => b"%}",
            b"{{" => b"}}",
            b"{#" => b"#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i + 2;
        let mut j = start;
        let mut quote = None;
        let mut closed = false;
        while j + 1 < bytes.len() {
            match (quote, bytes[j]) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), b'\\') => j += 1,
                (Some(_), _) => {}
                (None, c @ (b'\'' | b'"')) if close != b"#}" => quote = Some(c),
                (None, _) if &bytes[j..j + 2] == close => {
                    closed = true;
                    break;
                }
                (None, _) => {}
            }
            j += 1;
        }
        // An unclosed tag runs to the end (and `j` may sit inside a character there).
        if !closed {
            j = bytes.len();
        }
        if close == b"%}" {
            found.push(&template[start..j]);
        }
        i = j + 2;
    }
    found
}

/// The names an expression uses as whole values: identifiers outside string literals that are
/// not an attribute (after a `.`), an item lookup (before `[` or `.`) or a call (before `(`).
fn bare_names(expr: &str) -> impl Iterator<Item = &str> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let (mut i, mut quote) = (0, None);
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let before = expr[..start].trim_end().ends_with('.');
                let after = expr[i..].trim_start().chars().next();
                if !before && !matches!(after, Some('.' | '[' | '(')) {
                    names.push(&expr[start..i]);
                }
                continue;
            }
            None => {}
        }
        i += 1;
    }
    names.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nDefault<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn system_message_is_optional() {
        let user = [ChatMessage::new("user", "Hi")];
        let out = render(CHATML, &user, true, "", "").unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nDefault<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with_system = [
            ChatMessage::new("system", "Be brief"),
            ChatMessage::new("user", "Hi"),
        ];
        let out = render(CHATML, &with_system, false, "", "").unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn python_string_methods_and_exceptions() {
        let t = "{{ bos_token }}{% for m in messages %}{% if m.role not in ['user'] %}{{ raise_exception('only users') }}{% endif %}{{ m.content.strip().upper() }}{% endfor %}";
        assert_eq!(
            render(t, &[ChatMessage::new("user", "  hey ")], false, "<s>", "").unwrap(),
            "<s>HEY"
        );
        let e = render(t, &[ChatMessage::new("assistant", "x")], false, "", "").unwrap_err();
        assert!(e.to_string().contains("only users"));
        assert!(render("{% for %}", &[], false, "", "").is_err());
    }

    #[test]
    fn namespaces_stored_in_namespaces_are_refused() {
        let cycles = [
            "{% set ns = namespace(s=1) %}{% set ns.s = ns %}{{ ns.s }}",
            "{% set ns = namespace() %}{{ '{%' }}{% set ns.a = ns %}{{ ns }}",
            "{% set\nns = namespace () %}{% set\tns.a = ns %}{{ ns }}",
            "{# {% #}{% set ns = namespace() %}{% set ns.a = ['%}', ns] %}{{ ns }}",
            "{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}{% if '\u{e9}",
            "{%- set ns = namespace() -%}{% set m = ns %}{% set ns.x = [1, m] %}{{ ns }}",
            "{% set a = namespace() %}{% set b = namespace(x=a) %}{% set a.y = b %}{{ a }}",
        ];
        for t in cycles {
            let e = render(t, &[ChatMessage::new("user", "hi")], true, "", "").unwrap_err();
            assert!(
                e.to_string().contains("stores a namespace inside"),
                "{t}: {e}"
            );
        }
        // Attributes, strings and calls are not the namespace itself.
        let fine = "{% set ns = namespace(s='', n=0) %}{% set ns.s = ns.s + 'ns' %}{% set ns.n = ns['n'] + 1 %}{{ ns.s }}{{ ns.n }}";
        let text = render(fine, &[ChatMessage::new("user", "hi")], true, "", "").unwrap();
        assert_eq!(text, "ns1");
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let user = [ChatMessage::new("user", "Hi")];
        // Prints nothing, so only the fuel (or the sandbox's clock) can stop it.
        let endless = "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% set x = c %}{% endfor %}{% endfor %}{% endfor %}";
        let e = render(endless, &user, false, "", "")
            .unwrap_err()
            .to_string();
        // Out of fuel, or (on a slow or emulated CPU) out of the sandbox's time first.
        assert!(
            e.contains("instructions") || e.contains("longer than"),
            "{e}"
        );
        let huge = "{% for a in range(10000) %}{{ messages[0].content * 1000 }}{% endfor %}{% for m in messages %}{{ m.content * 10000 }}{% endfor %}";
        let long = [ChatMessage::new("user", &"y".repeat(4000))];
        let e = render(huge, &long, false, "", "").unwrap_err();
        assert!(e.to_string().contains("MiB"), "{e}");
        let recursive = "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}";
        assert!(render(recursive, &user, false, "", "").is_err());
    }

    /// What minijinja's fuel and the output cap do not bound: values that grow unprinted, a
    /// namespace cycle made through a loop variable, slow instructions. On Linux each ends as an
    /// error from the sandbox, with the process intact.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn templates_that_exhaust_memory_stack_or_time_are_refused() {
        let user = [ChatMessage::new("user", "Hi there")];
        let cases = [
            (
                "{% set ns = namespace(s=messages[0].content) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
                "rendering stopped", // at the memory or the time limit, whichever comes first
            ),
            (
                "{% set a = 'x' * 90000000 %}{% set b = a ~ a ~ a %}{{ b | length }}",
                "rendering stopped",
            ),
            (
                "{% set ns = namespace(a=1) %}{% for x in [ns] %}{% set ns.a = x %}{% endfor %}{{ ns }}",
                "overflowed its stack",
            ),
            (
                "{% for i in range(100000) %}{% set n = (messages[0].content * 10000000) | length %}{% endfor %}",
                "longer than",
            ),
        ];
        for (t, why) in cases {
            let e = render(t, &user, true, "<s>", "</s>").unwrap_err();
            assert!(e.to_string().contains(why), "{t}: {e}");
        }
        // A template's own errors still come back as they are.
        let e = render("{{ raise_exception('no') }}", &user, true, "", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "chat template: invalid operation: no (in chat:1)"
        );
    }

    #[test]
    fn a_refused_system_turn_is_folded_into_the_first_user_turn() {
        let t = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
        let msgs = [
            ChatMessage::new("system", "Be brief"),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello"),
        ];
        assert_eq!(
            render(t, &msgs, false, "", "").unwrap(),
            "<user>Be brief\n\nHi<assistant>Hello"
        );
        // A system turn with no user turn to fold into stays refused.
        let only_system = [ChatMessage::new("system", "x")];
        assert!(render(t, &only_system, false, "", "").is_err());
    }
}
