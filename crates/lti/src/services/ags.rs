//! Assignment and Grade Services 2.0: line items, scores, results.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{link_rel, service_url, ServiceClient};
use crate::error::LtiError;

pub const MEDIA_LINEITEM: &str = "application/vnd.ims.lis.v2.lineitem+json";
pub const MEDIA_LINEITEM_CONTAINER: &str = "application/vnd.ims.lis.v2.lineitemcontainer+json";
pub const MEDIA_SCORE: &str = "application/vnd.ims.lis.v1.score+json";
pub const MEDIA_RESULT_CONTAINER: &str = "application/vnd.ims.lis.v2.resultcontainer+json";
/// Stop following `next` links after this many pages.
pub const MAX_PAGES: usize = 100;
/// Canvas's optional score extension (submission details for its gradebook).
pub const CANVAS_SUBMISSION: &str = "https://canvas.instructure.com/lti/submission";

/// A gradebook column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// The line item's URL (absent when creating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub score_maximum: f64,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_link_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<String>,
    /// Platform extensions, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LineItem {
    pub fn new(label: impl Into<String>, score_maximum: f64) -> Self {
        LineItem {
            id: None,
            score_maximum,
            label: label.into(),
            resource_id: None,
            resource_link_id: None,
            tag: None,
            start_date_time: None,
            end_date_time: None,
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityProgress {
    Initialized,
    Started,
    InProgress,
    Submitted,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GradingProgress {
    FullyGraded,
    Pending,
    PendingManual,
    Failed,
    NotReady,
}

/// A score to post (`application/vnd.ims.lis.v1.score+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// The platform's `sub` for the learner.
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_given: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_maximum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// RFC 3339 with sub-second precision (Canvas needs it; Moodle needs each
    /// one newer than the last).
    pub timestamp: String,
    pub activity_progress: ActivityProgress,
    pub grading_progress: GradingProgress,
    /// Extensions such as `https://canvas.instructure.com/lti/submission`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Score {
    pub fn new(
        user_id: impl Into<String>,
        timestamp: DateTime<Utc>,
        activity_progress: ActivityProgress,
        grading_progress: GradingProgress,
    ) -> Self {
        Score {
            user_id: user_id.into(),
            score_given: None,
            score_maximum: None,
            comment: None,
            timestamp: timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            activity_progress,
            grading_progress,
            extra: Map::new(),
        }
    }

    /// Sets scoreGiven and scoreMaximum together (the spec requires both).
    pub fn with_score(mut self, given: f64, maximum: f64) -> Self {
        self.score_given = Some(given);
        self.score_maximum = Some(maximum);
        self
    }

    /// Adds Canvas's submission extension: `new_submission` (whether this
    /// score makes a new submission attempt in Canvas's gradebook) and, for
    /// a new submission, `submitted_at` (RFC 3339, sub-second, UTC).
    pub fn with_canvas_submission(
        mut self,
        new_submission: bool,
        submitted_at: Option<DateTime<Utc>>,
    ) -> Self {
        let mut ext = Map::new();
        ext.insert("new_submission".into(), Value::Bool(new_submission));
        if let Some(t) = submitted_at {
            ext.insert(
                "submitted_at".into(),
                Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            );
        }
        self.extra
            .insert(CANVAS_SUBMISSION.to_string(), Value::Object(ext));
        self
    }
}

/// A result (`application/vnd.ims.lis.v2.resultcontainer+json` element).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultItem {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub score_of: Option<String>,
    pub user_id: String,
    #[serde(default)]
    pub result_score: Option<f64>,
    #[serde(default)]
    pub result_maximum: Option<f64>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Filters for listing line items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineItemFilter {
    pub resource_link_id: Option<String>,
    pub resource_id: Option<String>,
    pub tag: Option<String>,
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<String, LtiError> {
    let mut u = url::Url::parse(base).map_err(|e| LtiError::InvalidUrl {
        what: "service URL",
        reason: e.to_string(),
    })?;
    if !pairs.is_empty() {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u.to_string())
}

impl ServiceClient {
    /// Lists line items (following `next` links).
    pub async fn line_items(
        &self,
        token: &str,
        lineitems_url: &str,
        filter: &LineItemFilter,
    ) -> Result<Vec<LineItem>, LtiError> {
        let mut pairs = Vec::new();
        if let Some(v) = &filter.resource_link_id {
            pairs.push(("resource_link_id", v.as_str()));
        }
        if let Some(v) = &filter.resource_id {
            pairs.push(("resource_id", v.as_str()));
        }
        if let Some(v) = &filter.tag {
            pairs.push(("tag", v.as_str()));
        }
        let mut url = Some(with_query(lineitems_url, &pairs)?);
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(u) = url.take() {
            pages += 1;
            let req = self
                .http()
                .get(&u)
                .header(reqwest::header::ACCEPT, MEDIA_LINEITEM_CONTAINER);
            let resp = self.send(req, &u, token).await?;
            let next = link_rel(&resp, "next");
            let items: Vec<LineItem> = Self::json(resp, &u).await?;
            all.extend(items);
            if pages < MAX_PAGES {
                url = next;
            }
        }
        Ok(all)
    }

    /// Creates a line item; returns it with its `id`.
    pub async fn create_line_item(
        &self,
        token: &str,
        lineitems_url: &str,
        item: &LineItem,
    ) -> Result<LineItem, LtiError> {
        let req = self
            .http()
            .post(lineitems_url)
            .header(reqwest::header::ACCEPT, MEDIA_LINEITEM)
            .header(reqwest::header::CONTENT_TYPE, MEDIA_LINEITEM)
            .body(
                serde_json::to_vec(item).map_err(|e| LtiError::ServiceResponseInvalid {
                    url: lineitems_url.to_string(),
                    reason: e.to_string(),
                })?,
            );
        let resp = self.send(req, lineitems_url, token).await?;
        Self::json(resp, lineitems_url).await
    }

    /// Finds the line item with `item`'s resource_link_id / resource_id / tag,
    /// or creates it.
    pub async fn find_or_create_line_item(
        &self,
        token: &str,
        lineitems_url: &str,
        item: &LineItem,
    ) -> Result<LineItem, LtiError> {
        let filter = LineItemFilter {
            resource_link_id: item.resource_link_id.clone(),
            resource_id: item.resource_id.clone(),
            tag: item.tag.clone(),
        };
        let found = self.line_items(token, lineitems_url, &filter).await?;
        // Filter again locally: some platforms ignore the query parameters.
        let m = found.into_iter().find(|li| {
            (item.resource_id.is_none() || li.resource_id == item.resource_id)
                && (item.resource_link_id.is_none() || li.resource_link_id == item.resource_link_id)
                && (item.tag.is_none() || li.tag == item.tag)
        });
        match m {
            Some(li) => Ok(li),
            None => self.create_line_item(token, lineitems_url, item).await,
        }
    }

    /// Posts a score to `<lineitem>/scores`.
    pub async fn post_score(
        &self,
        token: &str,
        lineitem_url: &str,
        score: &Score,
    ) -> Result<(), LtiError> {
        let url = service_url(lineitem_url, "scores")?;
        let req = self
            .http()
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, MEDIA_SCORE)
            .body(
                serde_json::to_vec(score).map_err(|e| LtiError::ServiceResponseInvalid {
                    url: url.clone(),
                    reason: e.to_string(),
                })?,
            );
        self.send(req, &url, token).await.map(|_| ())
    }

    /// Reads `<lineitem>/results`, optionally for one user (following `next`).
    pub async fn results(
        &self,
        token: &str,
        lineitem_url: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<ResultItem>, LtiError> {
        let base = service_url(lineitem_url, "results")?;
        let pairs: Vec<(&str, &str)> = user_id.map(|u| ("user_id", u)).into_iter().collect();
        let mut url = Some(with_query(&base, &pairs)?);
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(u) = url.take() {
            pages += 1;
            let req = self
                .http()
                .get(&u)
                .header(reqwest::header::ACCEPT, MEDIA_RESULT_CONTAINER);
            let resp = self.send(req, &u, token).await?;
            let next = link_rel(&resp, "next");
            let items: Vec<ResultItem> = Self::json(resp, &u).await?;
            all.extend(items);
            if pages < MAX_PAGES {
                url = next;
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_server::{Reply, TestServer};
    use crate::testing;

    #[test]
    fn score_serialises_with_sub_second_timestamp() {
        let s = Score::new(
            "u1",
            testing::fixed_now() + chrono::Duration::microseconds(1500),
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        )
        .with_score(8.0, 10.0);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["userId"], "u1");
        assert_eq!(v["scoreGiven"], 8.0);
        assert_eq!(v["scoreMaximum"], 10.0);
        assert_eq!(v["activityProgress"], "Completed");
        assert_eq!(v["gradingProgress"], "FullyGraded");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.001500Z");
    }

    #[test]
    fn canvas_submission_extension() {
        let at = testing::fixed_now() + chrono::Duration::microseconds(20);
        let s = Score::new(
            "u1",
            at,
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        )
        .with_canvas_submission(true, Some(at));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v[CANVAS_SUBMISSION],
            serde_json::json!({"new_submission": true, "submitted_at": "2026-01-01T00:00:00.000020Z"})
        );
        let s = Score::new(
            "u1",
            at,
            ActivityProgress::InProgress,
            GradingProgress::Pending,
        )
        .with_canvas_submission(false, None);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v[CANVAS_SUBMISSION],
            serde_json::json!({"new_submission": false})
        );
    }

    #[tokio::test]
    async fn find_or_create_and_post_score() {
        let server = TestServer::start(vec![
            Reply::json(200, "[]"),
            Reply::json(
                201,
                r#"{"id":"http://x/li/7","scoreMaximum":100,"label":"Intro","resourceId":"course:intro","resourceLinkId":"rl-1"}"#,
            ),
            Reply::json(200, ""),
        ])
        .await;
        let c = ServiceClient::new("ua-test").unwrap();
        let mut item = LineItem::new("Intro", 100.0);
        item.resource_id = Some("course:intro".into());
        item.resource_link_id = Some("rl-1".into());
        let li = c
            .find_or_create_line_item("tok", &server.url("/lineitems?type_id=1"), &item)
            .await
            .unwrap();
        assert_eq!(li.id.as_deref(), Some("http://x/li/7"));
        let score = Score::new(
            "u",
            testing::fixed_now(),
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        );
        c.post_score(
            "tok",
            &server.url("/lineitems/7/lineitem?type_id=1"),
            &score,
        )
        .await
        .unwrap();
        let r = server.requests();
        assert_eq!(r[0].method, "GET");
        assert!(r[0].path.contains("resource_id=course%3Aintro"));
        assert!(r[0].path.contains("type_id=1"));
        assert_eq!(
            r[0].header("accept").as_deref(),
            Some(MEDIA_LINEITEM_CONTAINER)
        );
        assert_eq!(r[0].header("authorization").as_deref(), Some("Bearer tok"));
        assert_eq!(r[1].method, "POST");
        assert_eq!(r[1].header("content-type").as_deref(), Some(MEDIA_LINEITEM));
        assert_eq!(r[2].path, "/lineitems/7/lineitem/scores?type_id=1");
        assert_eq!(r[2].header("content-type").as_deref(), Some(MEDIA_SCORE));
        assert_eq!(r[2].header("user-agent").as_deref(), Some("ua-test"));
    }

    #[tokio::test]
    async fn http_errors_carry_status() {
        let server =
            TestServer::start(vec![Reply::json(409, r#"{"error":"older timestamp"}"#)]).await;
        let c = ServiceClient::new("ua").unwrap();
        let score = Score::new(
            "u",
            testing::fixed_now(),
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        );
        let err = c
            .post_score("t", &server.url("/li"), &score)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), "service_http_error");
        assert!(!err.is_retryable());
        // Nothing listening: unreachable and retryable.
        let err = c
            .post_score("t", "http://127.0.0.1:9/li", &score)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "service_unreachable");
        assert!(err.is_retryable());
    }
}
