//! French typography, applied where text leaves guichet — every page, every mail —
//! rather than typed by hand in a hundred sentences:
//!
//! - a no-break space (U+00A0) before `:` and inside `« »`, a narrow one (U+202F) before
//!   `;`, `?` and `!`, replacing the ordinary space typed there;
//! - a no-break space between a number and what follows it ("2 minutes", "13 h 00",
//!   "5 000 caractères"), a narrow one between groups of digits (thousands, a phone
//!   number);
//! - the typographic apostrophe (’) between two letters.
//!
//! [`html`] leaves tags, attributes, entities other than the apostrophe's, and the
//! contents of `code`, `pre`, `textarea`, `script` and `style` as they are: what a
//! member typed comes back into a form unchanged, and a record to copy stays exact.

/// No-break space.
pub const NBSP: char = '\u{a0}';
/// Narrow no-break space.
pub const NNBSP: char = '\u{202f}';

/// Whether a character ends a word's surroundings: what may follow `:`, `;`, `?`, `!`
/// for them to be punctuation rather than part of a token (`a:b`, `?x=1`).
fn ends_punctuation(next: Option<char>) -> bool {
    next.is_none_or(|c| c.is_whitespace() || matches!(c, ')' | '»' | '.' | ',' | '"' | '<' | '\u{a0}' | '\u{202f}'))
}

/// What an ordinary space becomes, from the characters around it: `before` are the
/// visible characters before it (nearest last), `next` and `after` the two after it.
fn space(before: &[char], next: Option<char>, after: Option<char>) -> char {
    let prev = before.last().copied();
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    match next {
        Some(':') if ends_punctuation(after) => return NBSP,
        Some(';' | '?' | '!') if ends_punctuation(after) => return NNBSP,
        Some('»') => return NBSP,
        _ => {}
    }
    if prev == Some('«') {
        return NBSP;
    }
    if digit(prev) && next.is_some_and(|c| c.is_alphabetic() || c == '%' || c == '€') {
        return NBSP;
    }
    // "13 h 00": the space after the `h` of a time.
    if prev == Some('h') && digit(next) && digit(after) && before.len() >= 3 {
        let [ref d, ref s, _] = before[before.len() - 3..] else { return ' ' };
        if d.is_ascii_digit() && (*s == NBSP || *s == ' ') {
            return NBSP;
        }
    }
    // Groups of digits: thousands ("5 000"), a phone number ("04 72 00 00 00").
    if digit(prev) && digit(next) {
        return NNBSP;
    }
    ' '
}

/// Whether the word around an apostrophe is an email address (`o'brien@…`): its
/// apostrophe is part of it and stays. `before` are the visible characters before it,
/// `after` the text after it (up to a space or a tag: `wording::breakable` keeps an
/// address's local part and its `@` in one piece).
fn in_address(before: &[char], after: &str) -> bool {
    let behind = before.iter().rev().take_while(|c| !c.is_whitespace()).any(|c| *c == '@');
    behind || after.chars().take_while(|c| !c.is_whitespace() && *c != '<').any(|c| c == '@')
}

/// Plain text (a mail's text part, a subject, a message on the command line).
pub fn text(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        match c {
            ' ' => out.push(space(&chars[..i], next, chars.get(i + 2).copied())),
            '\'' if prev.is_some_and(char::is_alphabetic)
                && next.is_some_and(char::is_alphabetic)
                && !in_address(
                    &chars[..i],
                    &input[input.char_indices().nth(i + 1).map_or(input.len(), |(at, _)| at)..],
                ) =>
            {
                out.push('’');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Elements whose content is left as it is.
const VERBATIM: [&str; 5] = ["code", "pre", "textarea", "script", "style"];

/// An HTML page: only the text between tags changes (see the module's note).
pub fn html(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len() + 64);
    let mut verbatim: Option<&'static str> = None;
    // The last three characters a reader sees (tags skipped), oldest first.
    let mut tail = Tail::default();
    let mut at = 0;
    while at < bytes.len() {
        // Runs of ordinary characters are copied as they are: only these four matter.
        let start = at;
        at += bytes[at..].iter().position(|b| matches!(b, b' ' | b'\'' | b'&' | b'<')).unwrap_or(bytes.len() - at);
        let run = &input[start..at];
        out.push_str(run);
        if verbatim.is_none() {
            tail.extend(run);
        }
        let Some(&byte) = bytes.get(at) else { break };
        let rest = &input[at..];
        if byte == b'<' {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let tag = &rest[..end];
            let closing = tag.as_bytes().get(1) == Some(&b'/');
            let name = &tag[if closing { 2 } else { 1 }..];
            let name = &name[..name.bytes().position(|b| !b.is_ascii_alphanumeric()).unwrap_or(name.len())];
            if let Some(open) = verbatim {
                if closing && name.eq_ignore_ascii_case(open) {
                    verbatim = None;
                }
            } else if !closing && (3..=8).contains(&name.len()) {
                verbatim = VERBATIM.into_iter().find(|v| v.len() == name.len() && name.eq_ignore_ascii_case(v));
            }
            out.push_str(tag);
            at += end;
            continue;
        }
        if verbatim.is_some() {
            out.push(char::from(byte));
            at += 1;
            continue;
        }
        let prev_letter = tail.last().is_some_and(char::is_alphabetic);
        if byte == b'&' {
            // An entity is short: its `;` is looked for in the next few bytes only.
            let end = rest.bytes().take(9).position(|b| b == b';').map_or(1, |e| e + 1);
            let entity = &rest[..end];
            let after = &rest[end..];
            let apostrophe = matches!(entity, "&#39;" | "&#x27;" | "&apos;");
            let next_letter = after.chars().next().is_some_and(char::is_alphabetic);
            if apostrophe && prev_letter && next_letter && !in_address(&visible_word(&out), after) {
                out.push('’');
                tail.push('’');
            } else {
                out.push_str(entity);
                tail.push(match entity {
                    "&nbsp;" => NBSP,
                    "&#39;" | "&#x27;" | "&apos;" => '\'',
                    _ => '&',
                });
            }
            at += end;
            continue;
        }
        let mut ahead = rest[1..].chars();
        let (next, after) = (ahead.next(), ahead.next());
        let written = match byte {
            b' ' => space(tail.chars(), next, after),
            _ if prev_letter
                && next.is_some_and(char::is_alphabetic)
                && !in_address(&visible_word(&out), &rest[1..]) =>
            {
                '’'
            }
            _ => '\'',
        };
        out.push(written);
        tail.push(written);
        at += 1;
    }
    out
}

/// The last three characters a reader has seen, oldest first (no allocation: this runs
/// for every space of every page).
#[derive(Debug, Default)]
struct Tail {
    buffer: [char; 3],
    len: usize,
}

impl Tail {
    fn push(&mut self, c: char) {
        self.buffer = [self.buffer[1], self.buffer[2], c];
        self.len = (self.len + 1).min(3);
    }

    /// After a run of text: its last three characters.
    fn extend(&mut self, run: &str) {
        let mut back = run.chars().rev();
        let (third, second, first) = (back.next(), back.next(), back.next());
        for c in [first, second, third].into_iter().flatten() {
            self.push(c);
        }
    }

    fn last(&self) -> Option<char> {
        (self.len > 0).then_some(self.buffer[2])
    }

    fn chars(&self) -> &[char] {
        &self.buffer[3 - self.len..]
    }
}

/// The visible word that ends `html` (back to a space, tags skipped): where an
/// apostrophe's email address would begin.
fn visible_word(html: &str) -> Vec<char> {
    let mut word = Vec::new();
    let mut in_tag = false;
    for c in html.chars().rev() {
        match c {
            '>' => in_tag = true,
            '<' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() => break,
            c => word.push(c),
        }
        if word.len() > 254 {
            break;
        }
    }
    word.reverse();
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> String {
        s.replace(NBSP, "~").replace(NNBSP, "^")
    }

    #[test]
    fn spaces_before_double_punctuation_and_inside_quotes_do_not_break() {
        assert_eq!(shown(&text("Référence : A-12 ; vraiment ? oui !")), "Référence~: A-12^; vraiment^? oui^!");
        assert_eq!(shown(&text("le mot « bonjour »")), "le mot «~bonjour~»");
        assert_eq!(shown(&text("https://x.example/a?b=c et a:b")), "https://x.example/a?b=c et a:b", "tokens stay");
    }

    #[test]
    fn numbers_hold_to_their_units_and_times_stay_whole() {
        assert_eq!(shown(&text("le 3 mars à 13 h 00, 2 minutes")), "le 3~mars à 13~h~00, 2~minutes");
        assert_eq!(shown(&text("5 000 caractères")), "5^000~caractères");
        assert_eq!(shown(&text("04 72 00 00 00")), "04^72^00^00^00", "a phone number does not break either");
    }

    #[test]
    fn apostrophes_between_letters_become_typographic() {
        assert_eq!(text("l'identifiant n'est pas 'cité'"), "l’identifiant n’est pas 'cité'");
    }

    #[test]
    fn an_apostrophe_in_an_email_address_stays() {
        assert_eq!(text("écrire à o'brien@chu.example.fr, l'adresse"), "écrire à o'brien@chu.example.fr, l’adresse");
        let page = "<td><span class=\"nowrap\">o&#39;brien@</span><wbr><span class=\"nowrap\">chu</span></td> l&#39;a";
        assert_eq!(
            html(page),
            "<td><span class=\"nowrap\">o&#39;brien@</span><wbr><span class=\"nowrap\">chu</span></td> l’a"
        );
    }

    #[test]
    fn html_changes_text_only() {
        let page = r#"<p title="a : b">Code : <code>x : y</code> l&#39;accès, <b>5</b> minutes</p><textarea>n'y touchez : pas</textarea><input value="l'a : b">"#;
        let expected = "<p title=\"a : b\">Code~: <code>x : y</code> l’accès, <b>5</b>~minutes</p><textarea>n'y touchez : pas</textarea><input value=\"l'a : b\">";
        assert_eq!(shown(&html(page)), expected);
        assert_eq!(shown(&html("<dt>Adresse</dt> :<br>")), "<dt>Adresse</dt>~:<br>");
        assert_eq!(shown(&html("« <code>v=spf1 -all</code> »")), "«~<code>v=spf1 -all</code>~»");
    }
}
