//! HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>) as browsers' DevTools,
//! HTTP Toolkit, mitmproxy and the lab itself write it. The document is read as a stream:
//! each entry is handed over as soon as it is parsed, and only what is asked for is kept
//! (a replay keeps the requests, never the responses).

use std::io::Read;
use std::marker::PhantomData;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::{Parts, RecordedHeaders, SourceOptions, method, with_offsets};
use crate::replay::session::SessionMeta;
use crate::replay::{Traffic, TrafficError, TrafficFormat};

/// What a streamed HAR document held besides the entries handed over.
#[derive(Debug)]
pub(crate) struct HarStream<M> {
    /// `log._mirrorlabSession`, when the lab wrote the file as a session.
    pub meta: Option<M>,
}

/// Reads a HAR document from `reader`, handing each `log.entries[]` item to `each` with
/// its 0-based index and the `_mirrorlabSession` read so far (the lab writes it before the
/// entries). An error of `each` stops the read at that entry, with its line and column.
pub(crate) fn for_each_entry<R, M, T, F>(
    reader: R,
    path: &Path,
    mut each: F,
) -> Result<HarStream<M>, TrafficError>
where
    R: Read,
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    let mut state = State {
        meta: None,
        entries: 0,
        saw_entries: false,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let read = DocSeed::<M, T, F> {
        state: &mut state,
        each: &mut each,
        entry: PhantomData,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    read.map_err(|e| json_error(path, &e))?;
    if !state.saw_entries {
        return Err(TrafficError::Parse {
            path: path.to_owned(),
            line: 1,
            column: None,
            message: "not a HAR file: there is no `log.entries` array".to_owned(),
        });
    }
    Ok(HarStream { meta: state.meta })
}

/// A JSON error as a parse error at its line and column.
fn json_error(path: &Path, e: &serde_json::Error) -> TrafficError {
    let text = e.to_string();
    // serde_json appends " at line L column C"; the location is given apart.
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m)
        .to_owned();
    TrafficError::Parse {
        path: path.to_owned(),
        line: e.line().max(1),
        column: Some(e.column().max(1)),
        message: if e.is_eof() {
            format!("{message} (the file ends early: truncated?)")
        } else {
            message
        },
    }
}

struct State<M> {
    meta: Option<M>,
    entries: usize,
    saw_entries: bool,
}

struct DocSeed<'a, M, T, F> {
    state: &'a mut State<M>,
    each: &'a mut F,
    entry: PhantomData<fn() -> T>,
}

impl<'a, M, T, F> DocSeed<'a, M, T, F> {
    fn reborrow(&mut self) -> DocSeed<'_, M, T, F> {
        DocSeed {
            state: &mut *self.state,
            each: &mut *self.each,
            entry: PhantomData,
        }
    }
}

impl<'de, M, T, F> DeserializeSeed<'de> for DocSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, M, T, F> Visitor<'de> for DocSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a HAR document: an object with `log`")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "log" {
                map.next_value_seed(LogSeed(self.reborrow()))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct LogSeed<'a, M, T, F>(DocSeed<'a, M, T, F>);

impl<'de, M, T, F> DeserializeSeed<'de> for LogSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, M, T, F> Visitor<'de> for LogSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the HAR `log` object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "_mirrorlabSession" => self.0.state.meta = Some(map.next_value()?),
                "entries" => {
                    self.0.state.saw_entries = true;
                    map.next_value_seed(EntriesSeed(self.0.reborrow()))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct EntriesSeed<'a, M, T, F>(DocSeed<'a, M, T, F>);

impl<'de, M, T, F> DeserializeSeed<'de> for EntriesSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, M, T, F> Visitor<'de> for EntriesSeed<'_, M, T, F>
where
    M: DeserializeOwned,
    T: DeserializeOwned,
    F: FnMut(Option<&M>, usize, T) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("`log.entries`, an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0.state;
        while let Some(entry) = seq.next_element::<T>()? {
            let index = state.entries;
            state.entries += 1;
            (self.0.each)(state.meta.as_ref(), index, entry).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

/// `log.entries[]` as a replay reads it: when, and the request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryIn {
    started_date_time: TimeIn,
    request: RequestIn,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    method: MethodIn,
    url: UrlIn,
    #[serde(default)]
    headers: Vec<PairIn>,
    #[serde(default)]
    post_data: Option<PostDataIn>,
}

#[derive(Debug, Deserialize)]
struct PairIn {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct PostDataIn {
    #[serde(default)]
    text: Option<String>,
    /// The lab writes `_encoding`; some tools write `encoding` as in `content`.
    #[serde(rename = "_encoding", alias = "encoding", default)]
    encoding: Option<String>,
}

/// `startedDateTime`, checked where it is read so an error has its line.
#[derive(Debug)]
struct TimeIn(i128);

impl<'de> Deserialize<'de> for TimeIn {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let at = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
            de::Error::custom(format!(
                "startedDateTime {text:?} is not an ISO 8601 date-time like 2009-07-24T19:20:30.45+01:00 ({e})"
            ))
        })?;
        Ok(TimeIn(
            i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos()),
        ))
    }
}

/// `request.method`, checked where it is read so an error has its line.
#[derive(Debug)]
struct MethodIn(http::Method);

impl<'de> Deserialize<'de> for MethodIn {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        method(&text)
            .map(MethodIn)
            .map_err(|m| de::Error::custom(format!("request.method: {m}")))
    }
}

/// `request.url` as authority and origin-form target, checked where it is read. A URL of
/// another scheme (`ws://`, `wss://`, `chrome-extension://`: DevTools saves WebSockets and
/// extension requests beside the page's) is kept as `other_scheme`, skipped and counted.
#[derive(Debug)]
struct UrlIn {
    authority: String,
    target: String,
    other_scheme: Option<String>,
}

impl<'de> Deserialize<'de> for UrlIn {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.eq_ignore_ascii_case("http")
            && !scheme.eq_ignore_ascii_case("https")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Ok(UrlIn {
                authority: String::new(),
                target: String::new(),
                other_scheme: Some(scheme.to_ascii_lowercase()),
            });
        }
        let (authority, target) =
            split_url(&text).map_err(|m| de::Error::custom(format!("request.url: {m}")))?;
        Ok(UrlIn {
            authority,
            target,
            other_scheme: None,
        })
    }
}

/// Splits an absolute URL into its authority and origin-form target.
fn split_url(url: &str) -> Result<(String, String), String> {
    let url = url.split('#').next().unwrap_or(url);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("url {url:?} is not a valid URL ({e})"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "url {url:?} is not absolute; HAR 1.2 records `http://host/path`"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "url {url:?}: only http and https requests are replayed"
        ));
    }
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((authority.as_str().to_owned(), target))
}

fn entry_parts(
    index: usize,
    entry: EntryIn,
    options: &SourceOptions,
) -> Result<(Parts, usize), String> {
    let at = |m: String| format!("entry {} (log.entries[{index}]): {m}", index + 1);
    let request = entry.request;
    let mut headers = RecordedHeaders::new(options);
    for pair in &request.headers {
        headers.add(&pair.name, pair.value.as_bytes()).map_err(at)?;
    }
    let body = match request.post_data {
        None => bytes::Bytes::new(),
        Some(PostDataIn { text: None, .. }) => bytes::Bytes::new(),
        Some(PostDataIn {
            text: Some(text),
            encoding: Some(encoding),
        }) if encoding == "base64" => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| at(format!("postData.text is not valid base64 ({e})")))?
            .into(),
        Some(PostDataIn {
            text: Some(text), ..
        }) => text.into(),
    };
    let stripped = headers.stripped;
    // The URL's authority is what the client addressed; Host can only repeat it.
    let parts = Parts {
        index: index + 1,
        method: request.method.0,
        authority: request.url.authority,
        target: request.url.target,
        headers: headers.headers,
        body,
        sent_at_ns: entry.started_date_time.0,
    };
    Ok((parts, stripped))
}

/// Reads a HAR file (or a session, which is one) as traffic to replay.
pub(crate) fn read<R: Read>(
    reader: R,
    path: &Path,
    options: &SourceOptions,
) -> Result<Traffic, TrafficError> {
    let mut parts = Vec::new();
    let mut stripped = 0;
    let mut not_requests = 0;
    let stream = for_each_entry::<_, SessionMeta, EntryIn, _>(reader, path, |_, index, entry| {
        if entry.request.url.other_scheme.is_some() {
            // Not an HTTP request (a WebSocket, an extension's): nothing to replay.
            not_requests += 1;
            return Ok(());
        }
        let (p, s) = entry_parts(index, entry, options)?;
        stripped += s;
        parts.push(p);
        Ok(())
    })?;
    Ok(Traffic {
        path: path.to_owned(),
        format: if stream.meta.is_some() {
            TrafficFormat::Session
        } else {
            TrafficFormat::Har
        },
        requests: with_offsets(parts),
        credentials_stripped: stripped,
        not_requests,
    })
}
