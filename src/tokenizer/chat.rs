//! Chat templates: the model's own Jinja template rendered with minijinja.

use minijinja::{Environment, ErrorKind, Value, context};
use serde::Serialize;

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
    let result = render_as_given(
        template,
        messages,
        add_generation_prompt,
        bos_token,
        eos_token,
    );
    match (result, messages) {
        (Err(e), [system, user, rest @ ..]) if system.role == "system" && user.role == "user" => {
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
        (result, _) => result,
    }
}

/// [`render`] of exactly `messages`.
fn render_as_given(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = Environment::new();
    // transformers renders templates with these two Jinja options on.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Templates written for Python call str methods (`.strip()`, `.startswith()`, …).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_template("chat", template)
        .map_err(|e| Error::Template(e.to_string()))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| Error::Template(e.to_string()))?;
    tmpl.render(context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(|e| Error::Template(e.to_string()))
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
