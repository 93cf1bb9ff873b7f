//! Chat formatting: the model's own Jinja template from `tokenizer.chat_template`, rendered with
//! minijinja (plus Python string methods that HF templates use), or ChatML when the model has
//! none or its template fails.

use crate::llm::Message;
use minijinja::{context, Environment};

pub struct ChatTemplate {
    env: Option<Environment<'static>>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// `source`: the template text, if the model has one. `bos`/`eos`: token names the template
    /// may refer to.
    pub fn new(source: Option<String>, bos: String, eos: String) -> Self {
        let env = source.and_then(|src| {
            let mut env = Environment::new();
            // Hugging Face renders chat templates with these two on.
            env.set_trim_blocks(true);
            env.set_lstrip_blocks(true);
            env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
            env.add_function(
                "raise_exception",
                |msg: String| -> Result<String, minijinja::Error> {
                    Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
                },
            );
            env.add_template_owned("chat", src).ok()?;
            Some(env)
        });
        ChatTemplate { env, bos, eos }
    }

    /// Whether the model's own template is in use (false: ChatML).
    pub fn is_native(&self) -> bool {
        self.env.is_some()
    }

    /// The prompt for `messages`, ending where the assistant's reply starts.
    pub fn render(&self, messages: &[Message]) -> String {
        self.render_native(messages).unwrap_or_else(|| chatml(messages))
    }

    fn render_native(&self, messages: &[Message]) -> Option<String> {
        let tmpl = self.env.as_ref()?.get_template("chat").ok()?;
        let msgs: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.clone() })
            .collect();
        tmpl.render(context! {
            messages => msgs,
            add_generation_prompt => true,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
        })
        .ok()
    }
}

/// ChatML, the format of Qwen and SmolLM2.
pub fn chatml(messages: &[Message]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str("<|im_start|>");
        s.push_str(m.role.as_str());
        s.push('\n');
        s.push_str(&m.content);
        s.push_str("<|im_end|>\n");
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN_LIKE: &str = "{%- for message in messages %}\n  {%- if loop.first and message.role != 'system' %}\n    {{- '<|im_start|>system\\nDefault.<|im_end|>\\n' }}\n  {%- endif %}\n  {{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>' + '\\n' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n  {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

    #[test]
    fn renders_native_template_with_python_methods() {
        let t = ChatTemplate::new(Some(QWEN_LIKE.into()), String::new(), String::new());
        assert!(t.is_native());
        let out = t.render(&[Message::user("  hi  ")]);
        assert_eq!(out, "<|im_start|>system\nDefault.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn falls_back_to_chatml_on_broken_or_failing_template() {
        let broken = ChatTemplate::new(Some("{% for %}".into()), String::new(), String::new());
        assert!(!broken.is_native());
        let raising = ChatTemplate::new(
            Some("{{ raise_exception('no') }}".into()),
            String::new(),
            String::new(),
        );
        let msgs = [Message::system("s"), Message::user("u")];
        let expected = "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(broken.render(&msgs), expected);
        assert_eq!(raising.render(&msgs), expected);
    }
}
