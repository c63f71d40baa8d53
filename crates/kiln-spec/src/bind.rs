//! `${{ <expr> }}` bindings: find them, check them, substitute them.
//!
//! Values are substituted as text, with no quoting, as the original tool does.

/// One `${{ … }}` in a text: the byte range it covers and the trimmed expression inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    pub start: usize,
    pub end: usize,
    pub expr: &'a str,
}

/// The bindings of `text`, in order; an unterminated `${{` is an error (its byte offset).
pub fn bindings(text: &str) -> Result<Vec<Binding<'_>>, usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("${{") {
        let start = from + i;
        let inner = start + 3;
        let close = text[inner..].find("}}").ok_or(start)?;
        let end = inner + close + 2;
        out.push(Binding { start, end, expr: text[inner..inner + close].trim() });
        from = end;
    }
    Ok(out)
}

/// Replaces every binding with what `resolve` gives for its expression.
pub fn substitute<E>(
    text: &str,
    mut resolve: impl FnMut(&str) -> Result<String, E>,
) -> Result<Result<String, E>, usize> {
    let found = bindings(text)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for b in found {
        out.push_str(&text[last..b.start]);
        match resolve(b.expr) {
            Ok(v) => out.push_str(&v),
            Err(e) => return Ok(Err(e)),
        }
        last = b.end;
    }
    out.push_str(&text[last..]);
    Ok(Ok(out))
}

/// Splits `inputs.lr` into (`inputs`, `lr`); `None` for any other shape.
pub fn split_io(expr: &str) -> Option<(&str, &str)> {
    let (scope, name) = expr.split_once('.')?;
    (!name.is_empty() && !name.contains('.') && !name.contains(char::is_whitespace)).then_some((scope, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_substitutes_bindings() {
        let text = "python train.py --lr ${{inputs.lr}} --out ${{ outputs.model }} ${{inputs.lr}}";
        let found = bindings(text).unwrap();
        assert_eq!(found.iter().map(|b| b.expr).collect::<Vec<_>>(), ["inputs.lr", "outputs.model", "inputs.lr"]);
        let out = substitute(text, |e| Ok::<_, ()>(e.to_uppercase())).unwrap().unwrap();
        assert_eq!(out, "python train.py --lr INPUTS.LR --out OUTPUTS.MODEL INPUTS.LR");
        assert_eq!(bindings("echo ${{inputs.x").unwrap_err(), 5);
        assert_eq!(substitute("a ${{x}} b", |_| Err::<String, _>("nope")).unwrap(), Err("nope"));
        assert_eq!(bindings("no bindings, just $HOME and ${X}").unwrap(), vec![]);
    }

    #[test]
    fn io_expressions_split_in_two() {
        assert_eq!(split_io("inputs.lr"), Some(("inputs", "lr")));
        assert_eq!(split_io("parent.jobs.a.outputs.b"), None);
        assert_eq!(split_io("inputs."), None);
        assert_eq!(split_io("name"), None);
    }
}
