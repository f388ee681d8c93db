//! The API's contract for clients: the OpenAPI 3.1 document
//! (`shared/openapi.json`, served at `GET /openapi.json`) and the answers a
//! host gives before the component. The tests below hold the document to
//! the code of `api` in both directions, and docs/api.md's tables to both.

/// What a host answers itself, before or instead of the component
/// (runtime-shim's, as its README lists them): the status and, when the host
/// writes a JSON error, its code. No code of the API writes these, but a
/// client may get them, so the OpenAPI document lists them too.
pub const HOST_ANSWERS: [(u16, Option<&str>); 4] = [
    (414, Some("uri_too_long")),
    (431, None),
    (503, Some("shutting_down")),
    (504, Some("timeout")),
];

/// The OpenAPI 3.1 document of the API, as `GET /openapi.json` serves it.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ErrorCode, header};

    /// The document's parts, `$ref`s followed.
    fn resolve<'a>(doc: &'a serde_json::Value, v: &'a serde_json::Value) -> &'a serde_json::Value {
        match v.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let path = r.strip_prefix("#/").expect("local refs only");
                let target = path.split('/').fold(doc, |at, key| &at[key]);
                resolve(doc, target)
            }
            None => v,
        }
    }

    /// Every response object of the document: (status, response).
    fn responses(doc: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
        let mut out = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    out.push((status.clone(), resolve(doc, r)));
                }
            }
        }
        out
    }

    /// The codes a response's body may carry, as its schema restricts them.
    fn codes_of(r: &serde_json::Value) -> Vec<String> {
        let schema = &r["content"]["application/json"]["schema"];
        let enumed = schema["allOf"].as_array().and_then(|parts| {
            parts
                .iter()
                .find_map(|p| p["properties"]["error"]["properties"]["code"]["enum"].as_array())
        });
        enumed
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_openapi_document_and_the_code_agree_both_ways() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let enum_of = |schema: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect()
        };
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            enum_of("ErrorCode"),
            ours,
            "the ErrorCode schema lists exactly the code's codes"
        );
        let host: Vec<&str> = HOST_ANSWERS.iter().filter_map(|(_, c)| *c).collect();
        assert_eq!(
            enum_of("HostErrorCode"),
            host,
            "the HostErrorCode schema lists exactly HOST_ANSWERS' codes"
        );
        let status_of = |code: &str| {
            (ErrorCode::ALL.iter().map(|c| (c.status(), c.as_str())))
                .chain(HOST_ANSWERS.iter().filter_map(|(s, c)| Some((*s, (*c)?))))
                .find(|(_, c)| *c == code)
                .map(|(s, _)| s)
        };

        // Every (status, code) a response documents is one the code answers,
        // and every code is documented under its status.
        let mut documented: Vec<(u16, String)> = responses(&doc)
            .into_iter()
            .flat_map(|(status, r)| codes_of(r).into_iter().map(move |c| (status.parse().unwrap(), c)))
            .collect();
        for r in doc["components"]["responses"].as_object().unwrap().values() {
            if let Some(status) = codes_of(r).first().and_then(|c| status_of(c)) {
                documented.extend(codes_of(r).into_iter().map(|c| (status, c)));
            }
        }
        for (status, code) in &documented {
            assert_eq!(status_of(code), Some(*status), "{code} under {status}");
        }
        for (status, code) in HOST_ANSWERS.iter().filter_map(|(s, c)| Some((*s, (*c)?))) {
            assert!(
                documented.iter().any(|(s, c)| *s == status && c == code),
                "the host's {code} ({status}) is not documented"
            );
        }
        for c in ErrorCode::ALL {
            assert!(
                documented
                    .iter()
                    .any(|(s, code)| *s == c.status() && code == c.as_str()),
                "{} ({}) is not documented",
                c.as_str(),
                c.status()
            );
        }
        // Statuses: 200, 304 and the errors' own, nothing else.
        for (status, _) in responses(&doc) {
            let s: u16 = status.parse().unwrap();
            assert!(
                s == 200
                    || s == 304
                    || ErrorCode::ALL.iter().any(|c| c.status() == s)
                    || HOST_ANSWERS.iter().any(|(h, _)| *h == s),
                "status {s} is in the document but never answered"
            );
        }

        // Headers: those the document names are exactly header::ALL.
        let mut named: Vec<String> = Vec::new();
        let mut note = |n: &str| {
            let n = n.to_ascii_lowercase();
            if !named.contains(&n) {
                named.push(n);
            }
        };
        for (_, r) in responses(&doc) {
            for h in r["headers"].as_object().into_iter().flatten().map(|(k, _)| k) {
                note(h);
            }
            if r.get("content").is_some() {
                note(header::CONTENT_TYPE);
            }
        }
        for r in doc["components"]["responses"].as_object().unwrap().values() {
            for h in r["headers"].as_object().into_iter().flatten().map(|(k, _)| k) {
                note(h);
            }
        }
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "header" {
                        note(param["name"].as_str().unwrap());
                    }
                }
            }
        }
        named.sort();
        let mut ours: Vec<String> = header::ALL.iter().map(|h| h.to_string()).collect();
        ours.sort();
        assert_eq!(named, ours, "the document's headers and shared::api::header");
    }

    /// docs/api.md keeps its tables for people; they must say what the
    /// document says.
    #[test]
    fn docs_api_md_agrees_with_the_document() {
        let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        };
        let errors: Vec<(u16, String)> = md
            .lines()
            .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
            .map(|l| {
                let c = cells(l);
                (c[0].parse().unwrap(), c[1].clone())
            })
            .collect();
        let mut ours: Vec<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.status(), c.as_str().to_string()))
            .collect();
        let mut theirs = errors.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(theirs, ours, "docs/api.md's error table");
        let headers: Vec<String> = md
            .lines()
            .filter(|l| l.starts_with("| `") && l.matches('|').count() == 4)
            .map(|l| cells(l)[0].to_ascii_lowercase())
            .collect();
        for h in &headers {
            assert!(header::ALL.contains(&h.as_str()), "docs/api.md names header {h}");
        }
        for h in header::ALL {
            assert!(headers.iter().any(|x| x == h), "docs/api.md lacks header {h}");
        }
    }
}
