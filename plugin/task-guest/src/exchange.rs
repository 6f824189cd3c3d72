//! The task in two pure halves (the WIT `exchange` interface): [`plan`] validates the
//! input and builds the request exactly as it goes on the wire, [`read`] turns the
//! vendor's answer into the task's output or error. The host sends in between; `task.run`
//! does the same three steps with the send through `wasi:http`.

use crate::{
    Endpoint, FieldError, HttpResponse, OutgoingRequest, PlannedRequest, TaskError, parse_input,
};

impl OutgoingRequest {
    /// The headers as sent: the planned ones, then `Content-Length` when there is a
    /// body (a known length rather than chunked transfer encoding: some billing APIs and
    /// their gateways refuse chunked request bodies).
    pub fn wire_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = self.headers.clone();
        if !self.body.is_empty() {
            headers.push((
                "Content-Length".into(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        headers
    }

    /// The request as the WIT `planned-request`, with the warnings of its input.
    pub fn planned(&self, warnings: Vec<FieldError>) -> PlannedRequest {
        PlannedRequest {
            method: self.method.as_str().into(),
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path_with_query: self.path_with_query.clone(),
            headers: self.wire_headers(),
            body: self.body.clone(),
            options: self.options,
            url_field: self.url_field.clone(),
            warnings,
        }
    }
}

/// `exchange.plan` for an endpoint: validate the JSON input and plan its request.
pub fn plan(endpoint: &Endpoint, input: &str) -> Result<PlannedRequest, TaskError> {
    let value = parse_input(input)?;
    let (request, warnings) = endpoint.plan(&value)?;
    Ok(request.planned(warnings))
}

/// `exchange.read` for an endpoint: the answer to `request`, classified as the endpoint's
/// vendor documents it, as the task output (with the plan's warnings) or its error.
pub fn read(
    endpoint: &Endpoint,
    request: &PlannedRequest,
    response: HttpResponse,
) -> Result<String, TaskError> {
    let response = crate::answer(endpoint, received(response)?)?;
    Ok(crate::output_with_warnings(&response, &request.warnings))
}

/// A response as the host received it, as the task sees it: the body decoded from gzip
/// when the server compressed it, held to [`crate::send::MAX_RESPONSE_BODY`], and the
/// canonical reason phrase of its status.
pub fn received(response: HttpResponse) -> Result<HttpResponse, TaskError> {
    let max = crate::send::MAX_RESPONSE_BODY;
    if response.body.len() > max {
        return Err(TaskError::Transport(format!(
            "response body larger than {max} bytes"
        )));
    }
    let gzipped = response
        .headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v.trim().eq_ignore_ascii_case("gzip"));
    let body = if gzipped && !response.body.is_empty() {
        crate::send::gunzip(&response.body)?
    } else {
        response.body
    };
    Ok(HttpResponse {
        status_code: response.status_code,
        reason_phrase: crate::response::reason_phrase(response.status_code).into(),
        headers: response.headers,
        body,
    })
}
