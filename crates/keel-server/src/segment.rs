//! The Segment HTTP Tracking API's messages, parsed and checked one by one.
//!
//! Every call carries `userId` or `anonymousId`; `messageId` makes retries
//! harmless (when a client leaves it out, Keel derives one from the message's
//! content, so a resent message still deduplicates). The event time is
//! corrected for the client's clock: `receivedAt − (sentAt − timestamp)`.

use keel_core::{ExternalId, MessageId, Timestamp, UserId};
use serde_json::{Map, Value};

/// Limits on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one message (a single call, or one item of a batch).
    pub message_bytes: usize,
    /// Bytes of one batch request.
    pub batch_bytes: usize,
    /// Messages in one batch.
    pub batch_messages: usize,
}

impl Default for Limits {
    /// What the official SDKs send with their default settings: RudderStack's
    /// allow a message of up to 4 MiB and close a batch once it reaches
    /// 4 MiB (so one may hold up to 8 MiB); Segment's stay within 32 KiB and
    /// 500 KB. 2 500 messages per batch.
    fn default() -> Self {
        Self { message_bytes: 4 << 20, batch_bytes: (8 << 20) + (64 << 10), batch_messages: 2_500 }
    }
}

impl Limits {
    /// Segment's own limits: 32 KiB per call, 500 KiB and 2 500 messages per
    /// batch (what a server that only Segment's libraries talk to can hold to).
    pub fn segment() -> Self {
        Self { message_bytes: 32 * 1024, batch_bytes: 500 * 1024, batch_messages: 2_500 }
    }
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// A product event (`track`, and `page` / `screen` as `page_viewed` / `screen_viewed`).
    Event {
        /// The event name.
        name: String,
        /// Its properties.
        properties: Map<String, Value>,
    },
    /// The user belongs to an account (`group`).
    Group {
        /// The account.
        account: ExternalId,
        /// The account's traits.
        traits: Map<String, Value>,
    },
    /// The user no longer belongs to an account (Keel's `ungroup` extension).
    Ungroup {
        /// The account.
        account: ExternalId,
    },
    /// Who the user is (`identify`).
    Identify {
        /// The user's traits.
        traits: Map<String, Value>,
    },
    /// Two ids are the same user (`alias`).
    Alias {
        /// The id the user had before.
        previous: UserId,
    },
}

/// One checked message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its (given or derived) message id.
    pub message_id: MessageId,
    /// `userId`, else `anonymousId`.
    pub user: UserId,
    /// When it happened, corrected for the client's clock.
    pub timestamp: Timestamp,
    /// The account named by the message itself (`context.groupId`, or the
    /// configured property), if any.
    pub account: Option<ExternalId>,
    /// What it asks for.
    pub call: Call,
}

/// Why a message was rejected, for clients to match on: each rejected item
/// of a batch carries one, and a rejected single call carries it in the
/// error's `details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// Not a JSON object, or a required field is missing or of the wrong type.
    InvalidMessage,
    /// A `type` Keel does not take.
    UnknownType,
    /// `userId`, `anonymousId` or `previousId` does not check.
    InvalidUserId,
    /// `timestamp`, `originalTimestamp` or `sentAt` is not an ISO-8601 date-time.
    InvalidTimestamp,
    /// `groupId` (or the configured account property) does not check.
    InvalidAccountId,
    /// `messageId` does not check.
    InvalidMessageId,
    /// A track call's `event` is not a valid event name.
    InvalidEventName,
    /// An identify call's role is not a valid label.
    InvalidRole,
    /// The user belongs to no account yet (send a group call, or `context.groupId`).
    UnknownAccount,
    /// The message is over the per-message size limit.
    MessageTooLarge,
}

impl RejectionCode {
    /// The wire name (`unknown_account`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidMessage => "invalid_message",
            Self::UnknownType => "unknown_type",
            Self::InvalidUserId => "invalid_user_id",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::InvalidAccountId => "invalid_account_id",
            Self::InvalidMessageId => "invalid_message_id",
            Self::InvalidEventName => "invalid_event_name",
            Self::InvalidRole => "invalid_role",
            Self::UnknownAccount => "unknown_account",
            Self::MessageTooLarge => "message_too_large",
        }
    }
}

/// A rejected message: its code and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The code.
    pub code: RejectionCode,
    /// For a person.
    pub reason: String,
}

impl Rejection {
    /// A rejection with this code.
    pub fn new(code: RejectionCode, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectionCode::InvalidMessage, reason)
}

/// The call types, as the `type` field and the endpoints name them.
pub const TYPES: &[&str] = &["track", "page", "screen", "identify", "group", "alias", "ungroup"];

/// A text field: absent, null or empty is `None`; any other type is refused by name.
fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Rejection> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(other) => Err(invalid(format!("{key} must be a string, not {}", json_type(other)))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object(m: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, Rejection> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(invalid(format!("{key} must be an object"))),
    }
}

/// A call's traits, which may become an account's or a contact's stored
/// text: names and text values under Keel's text policy.
fn traits(m: &Map<String, Value>) -> Result<Map<String, Value>, Rejection> {
    let traits = object(m, "traits")?;
    for (name, value) in &traits {
        let checked = keel_core::check_text("the name", name)
            .and_then(|()| keel_core::check_text("the value", value.as_str().unwrap_or_default()));
        if let Err(e) = checked {
            return Err(invalid(format!("traits.{}: {e}", name.escape_debug())));
        }
    }
    Ok(traits)
}

fn time(m: &Map<String, Value>, key: &str) -> Result<Option<Timestamp>, Rejection> {
    let bad = |reason: String| Rejection::new(RejectionCode::InvalidTimestamp, reason);
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| bad(format!("{key} {s:?} is not an ISO-8601 date-time: {e}"))),
        Some(_) => Err(bad(format!("{key} must be an ISO-8601 string"))),
    }
}

/// An id field: strings as they are, numbers written out (Segment clients
/// send both); absent, null or empty is `None`, any other type is refused.
fn id_field(m: &Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(invalid(format!("{key} must be a string or a number, not {}", json_type(other)))),
    }
}

/// Context shared by the messages of one request.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// When the request arrived.
    pub received_at: Timestamp,
    /// The batch's `sentAt`, for messages without their own.
    pub sent_at: Option<Timestamp>,
    /// The batch's `context.groupId`, for messages without their own.
    pub group_id: Option<String>,
    /// A property naming the account in `track` calls, if configured.
    pub account_property: Option<String>,
    /// When a message may have happened.
    pub window: keel_core::TimeWindow,
}

/// Checks one message; `kind` is the endpoint's call type, or `None` in a
/// batch (then the message's own `type` says).
pub fn parse(value: &Value, kind: Option<&str>, env: &Envelope) -> Result<Message, Rejection> {
    use RejectionCode::{InvalidAccountId, InvalidMessageId, InvalidUserId, UnknownType};
    let Value::Object(m) = value else { return Err(invalid("a message must be a JSON object")) };
    let kind = match (kind, text(m, "type")?) {
        (Some(k), _) => k.to_owned(),
        (None, Some(t)) => t.to_ascii_lowercase(),
        (None, None) => return Err(invalid("type is missing")),
    };
    if !TYPES.contains(&kind.as_str()) {
        return Err(Rejection::new(UnknownType, format!("type {kind:?} is not one of {}", TYPES.join(", "))));
    }
    let user = match id_field(m, "userId")? {
        Some(u) => Some(u),
        None => id_field(m, "anonymousId")?,
    }
    .ok_or_else(|| invalid("userId or anonymousId is required"))?;
    let user = UserId::parse(&user).map_err(|e| Rejection::new(InvalidUserId, format!("userId: {e}")))?;

    let stamp = match time(m, "timestamp")? {
        Some(t) => Some(t),
        None => time(m, "originalTimestamp")?,
    };
    let sent = time(m, "sentAt")?.or(env.sent_at);
    let timestamp = match (stamp, sent) {
        (Some(t), Some(s)) => env.received_at - (s - t),
        (Some(t), None) => t,
        (None, _) => env.received_at,
    };
    // After the clock correction: a skewed clock may put an event a little
    // ahead; year 0 or 9999 is refused, not stored.
    env.window
        .check(timestamp, env.received_at)
        .map_err(|e| Rejection::new(RejectionCode::InvalidTimestamp, format!("timestamp: {e}")))?;

    let context = object(m, "context")?;
    let mut account = id_field(&context, "groupId")?.or_else(|| env.group_id.clone());
    let call = match kind.as_str() {
        "track" => {
            let name =
                text(m, "event")?.ok_or_else(|| invalid("event is required in a track call"))?.to_owned();
            let properties = object(m, "properties")?;
            if let Some(a) =
                env.account_property.as_ref().map(|key| id_field(&properties, key)).transpose()?.flatten()
            {
                account = Some(a);
            }
            Call::Event { name, properties }
        }
        "page" | "screen" => {
            let mut properties = object(m, "properties")?;
            for key in ["name", "category"] {
                if let Some(v) = text(m, key)? {
                    properties.entry(key).or_insert_with(|| Value::String(v.to_owned()));
                }
            }
            Call::Event { name: format!("{kind}_viewed"), properties }
        }
        "identify" => Call::Identify { traits: traits(m)? },
        "group" | "ungroup" => {
            let id = id_field(m, "groupId")?
                .ok_or_else(|| invalid(format!("groupId is required in a {kind} call")))?;
            let group = ExternalId::parse(&id)
                .map_err(|e| Rejection::new(InvalidAccountId, format!("groupId: {e}")))?;
            account = Some(id);
            if kind == "group" {
                Call::Group { account: group, traits: traits(m)? }
            } else {
                Call::Ungroup { account: group }
            }
        }
        _ => {
            let previous = id_field(m, "previousId")?
                .ok_or_else(|| invalid("previousId is required in an alias call"))?;
            let previous = UserId::parse(&previous)
                .map_err(|e| Rejection::new(InvalidUserId, format!("previousId: {e}")))?;
            Call::Alias { previous }
        }
    };
    let account = account
        .map(|a| ExternalId::parse(&a).map_err(|e| Rejection::new(InvalidAccountId, format!("groupId: {e}"))))
        .transpose()?;
    let message_id = match id_field(m, "messageId")? {
        Some(id) => {
            MessageId::parse(&id).map_err(|e| Rejection::new(InvalidMessageId, format!("messageId: {e}")))?
        }
        None => derived_id(m, &kind),
    };
    Ok(Message { message_id, user, timestamp, account, call })
}

/// A message id from the content, for clients that send none: the same
/// message resent gets the same id (transport fields are left out).
fn derived_id(m: &Map<String, Value>, kind: &str) -> MessageId {
    let mut content = m.clone();
    for transport in ["sentAt", "receivedAt", "writeKey", "messageId", "_metadata"] {
        content.remove(transport);
    }
    content.insert("type".into(), Value::String(kind.to_owned()));
    let text = Value::Object(content).to_string();
    let id = format!("keel-{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()));
    MessageId::parse(&id).unwrap_or_else(|_| unreachable!("a hex id is a valid message id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Envelope {
        Envelope {
            received_at: keel_core::parse_timestamp("2026-03-01T12:00:00Z").unwrap(),
            ..Envelope::default()
        }
    }

    #[test]
    fn the_client_clock_is_corrected_by_sent_at() {
        // The client's clock runs 10 minutes fast: it says it sent at 12:10
        // an event of 12:05; Keel received it at 12:00, so it happened at 11:55.
        let m = json!({"userId": "u1", "event": "Report Viewed", "messageId": "m1",
                       "timestamp": "2026-03-01T12:05:00Z", "sentAt": "2026-03-01T12:10:00Z",
                       "context": {"groupId": "acme"}});
        let msg = parse(&m, Some("track"), &env()).unwrap();
        assert_eq!(msg.timestamp.to_rfc3339(), "2026-03-01T11:55:00+00:00");
        assert_eq!(msg.account.as_ref().map(ExternalId::as_str), Some("acme"));
        assert!(matches!(msg.call, Call::Event { ref name, .. } if name == "Report Viewed"));
    }

    #[test]
    fn bad_messages_say_what_is_wrong_with_a_code() {
        use RejectionCode::{InvalidMessage, InvalidTimestamp, InvalidUserId, UnknownType};
        let e = env();
        let cases = [
            (json!({"event": "x"}), InvalidMessage, "userId or anonymousId is required"),
            (json!({"userId": "u"}), InvalidMessage, "event is required in a track call"),
            (
                json!({"userId": "u", "event": "x", "timestamp": "yesterday"}),
                InvalidTimestamp,
                "timestamp \"yesterday\" is not",
            ),
            (
                json!({"userId": "u", "event": "x", "properties": [1]}),
                InvalidMessage,
                "properties must be an object",
            ),
            (
                json!({"userId": " u", "event": "x"}),
                InvalidUserId,
                "userId: user id \" u\" has leading or trailing whitespace",
            ),
            (json!([1, 2]), InvalidMessage, "a message must be a JSON object"),
            (
                json!({"userId": "u", "event": "x", "timestamp": "0000-01-01T00:00:00Z"}),
                InvalidTimestamp,
                "before 2000-01-01",
            ),
            (
                json!({"userId": "u", "event": "x", "timestamp": "2026-03-01T12:00:00Z", "sentAt": "9999-01-01T00:00:00Z"}),
                InvalidTimestamp,
                "is before 2000-01-01",
            ),
            (
                json!({"userId": "u", "event": "x", "timestamp": "2026-03-03T12:00:00Z"}),
                InvalidTimestamp,
                "is after 2026-03-02T12:00:00Z",
            ),
            (
                json!({"userId": "u", "event": {"name": "x"}}),
                InvalidMessage,
                "event must be a string, not an object",
            ),
            (
                json!({"userId": ["u"], "event": "x"}),
                InvalidMessage,
                "userId must be a string or a number, not an array",
            ),
            (
                json!({"userId": "u", "event": "x", "messageId": true}),
                InvalidMessage,
                "messageId must be a string or a number",
            ),
        ];
        for (m, code, want) in cases {
            let err = parse(&m, Some("track"), &e).unwrap_err();
            assert_eq!(err.code, code, "{m}: {err:?}");
            assert!(err.reason.contains(want), "{m}: {err:?}");
        }
        let rejection = |m: Value, kind: Option<&str>| parse(&m, kind, &e).unwrap_err();
        assert!(rejection(json!({"userId": "u"}), None).reason.contains("type is missing"));
        let jump = rejection(json!({"userId": "u", "type": "jump"}), None);
        assert_eq!(jump.code, UnknownType);
        assert!(jump.reason.contains("\"jump\" is not"));
        assert!(rejection(json!({"userId": "u"}), Some("group")).reason.contains("groupId is required"));
    }

    #[test]
    fn a_message_without_id_gets_the_same_derived_id_when_resent() {
        let a = json!({"userId": "u1", "event": "x", "timestamp": "2026-03-01T11:00:00Z", "sentAt": "2026-03-01T11:00:01Z"});
        let b = json!({"userId": "u1", "event": "x", "timestamp": "2026-03-01T11:00:00Z", "sentAt": "2026-03-01T11:07:00Z"});
        let c = json!({"userId": "u1", "event": "y", "timestamp": "2026-03-01T11:00:00Z"});
        let id = |m: &Value| parse(m, Some("track"), &env()).unwrap().message_id;
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
        assert!(id(&a).as_str().starts_with("keel-"));
    }

    #[test]
    fn page_group_and_property_attribution() {
        let mut e = env();
        e.account_property = Some("account_id".into());
        let m = json!({"anonymousId": "anon-1", "event": "x", "properties": {"account_id": 42}});
        assert_eq!(parse(&m, Some("track"), &e).unwrap().account.unwrap().as_str(), "42");
        let p = parse(&json!({"userId": "u", "name": "Pricing"}), Some("page"), &e).unwrap();
        assert!(
            matches!(p.call, Call::Event { ref name, ref properties } if name == "page_viewed" && properties["name"] == "Pricing")
        );
        let g =
            parse(&json!({"userId": "u", "groupId": "acme", "traits": {"name": "Acme"}}), Some("group"), &e)
                .unwrap();
        assert_eq!(g.account.unwrap().as_str(), "acme");
    }
}
