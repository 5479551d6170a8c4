package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcomes, the values of the outcome label and log field.
const (
	outcomeOK              = "ok"
	outcomeUpstreamError   = "upstream_error"
	outcomeClientCancelled = "client_cancelled"
	outcomeTimeout         = "timeout"
	outcomeShed            = "shed"
	outcomeInvalid         = "invalid"
	outcomeNoBackend       = "no_backend"
	// outcomeInternal is a fault of the gateway itself. It never feeds backend health,
	// breakers or degradation.
	outcomeInternal = "internal"
)

// statusClientClosed is nginx's and Caddy's status for a client that went away; it is logged,
// never sent.
const statusClientClosed = 499

// Causes recorded on contexts, read back with context.Cause to label an outcome.
var (
	errChunkTimeout = errors.New("upstream sent nothing within first_byte_timeout or chunk_timeout")
	errShuttingDown = errors.New("gateway is shutting down")
)

// apiError is an error the gateway answers itself, in OpenAI's error shape.
type apiError struct {
	status     int
	typ        string // OpenAI's error.type
	code       string // OpenAI's error.code; empty is null
	param      string // the request field at fault; empty is null
	msg        string
	outcome    string
	retryAfter time.Duration // sets Retry-After when > 0
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", strings.TrimSuffix(e.msg, "."), e.cause)
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.cause }

// errInvalid is a 400 for a bad request body. String arguments come from the client, so each
// is clipped before it reaches the message, and through it the access log.
func errInvalid(param, format string, a ...any) *apiError {
	for i, v := range a {
		if s, ok := v.(string); ok {
			a[i] = clip(s)
		}
	}
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: clip(param),
		msg: fmt.Sprintf(format, a...), outcome: outcomeInvalid}
}

func errModelNotFound(model string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
		param: "model", msg: fmt.Sprintf("The model %q does not exist or is not served by this gateway.", clip(model)),
		outcome: outcomeInvalid}
}

// clip shortens a client-supplied string for a message or a log line.
func clip(s string) string {
	const limit = 256
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

func errTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
		code: "request_too_large", msg: fmt.Sprintf("Request body is larger than the limit of %d bytes.", limit),
		outcome: outcomeInvalid}
}

func errNoBackend(model string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "no_healthy_backend",
		msg:     fmt.Sprintf("No healthy backend can serve model %q right now; retry later.", model),
		outcome: outcomeNoBackend, retryAfter: time.Second}
}

func errModelsUnknown(model string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "models_not_listed_yet",
		msg:     fmt.Sprintf("Model %q is not listed by any backend that answered yet; retry later.", clip(model)),
		outcome: outcomeNoBackend, retryAfter: time.Second}
}

func errBackendsBusy(model string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "backends_busy",
		msg:     fmt.Sprintf("Every backend of model %q is at its max_concurrency; retry later.", model),
		outcome: outcomeNoBackend, retryAfter: time.Second}
}

func errDraining() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "shutting_down",
		msg: "The gateway is shutting down; retry on another replica.", outcome: outcomeShed,
		retryAfter: time.Second, cause: errShuttingDown}
}

func errUpstreamTransport(backend string, cause error) *apiError {
	return &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_unreachable",
		msg: fmt.Sprintf("Backend %q could not be reached.", backend), outcome: outcomeUpstreamError, cause: cause}
}

func errUpstreamTooLarge(backend string, limit int64) *apiError {
	return &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_response_too_large",
		msg:     fmt.Sprintf("Backend %q answered with more than max_response_bytes (%d bytes).", backend, limit),
		outcome: outcomeUpstreamError, cause: errAnswerTooLarge}
}

func errUpstreamTimeout(backend string, cause error) *apiError {
	return &apiError{status: http.StatusGatewayTimeout, typ: "server_error", code: "upstream_timeout",
		msg: fmt.Sprintf("Backend %q did not answer in time.", backend), outcome: outcomeTimeout, cause: cause}
}

// errClientGone labels a request whose connection ended under it: the client went away (499),
// or shutdown_grace ran out and the gateway cut it (503, outcome shed).
func errClientGone(ctx context.Context, cause error) *apiError {
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "shutting_down",
			msg: "The gateway shut down before the request finished.", outcome: outcomeShed, cause: cause}
	}
	return &apiError{status: statusClientClosed, msg: "client closed request", outcome: outcomeClientCancelled, cause: cause}
}

func errNotFoundRoute(path string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "unknown_url",
		msg: fmt.Sprintf("Unknown request URL: %s.", clip(path)), outcome: outcomeInvalid}
}

func errMethod(method, path string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error", code: "method_not_allowed",
		msg: fmt.Sprintf("Method %s is not allowed on %s.", clip(method), clip(path)), outcome: outcomeInvalid}
}

func errInternal(cause error) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", msg: "Internal gateway error.",
		outcome: outcomeInternal, cause: cause}
}

// asAPIError returns err as an apiError, wrapping anything else as an internal error.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errInternal(err)
}

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeError is the one place the gateway writes an error of its own to a client.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == statusClientClosed {
		return // nobody is listening
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(e.status)
	body, _ := json.Marshal(errorBody{Error: errorFields{Message: e.msg, Type: e.typ,
		Param: nullable(e.param), Code: nullable(e.code)}}) // cannot fail: strings only
	_, _ = w.Write(append(body, '\n'))
}

// errBodyTimeout answers a request whose body did not arrive whole within body_read_timeout.
// 408 rather than 400: the body was not bad, it was late, and a client may retry.
func errBodyTimeout(d time.Duration) *apiError {
	return &apiError{status: http.StatusRequestTimeout, typ: "invalid_request_error", code: "request_timeout",
		msg: fmt.Sprintf("The request body did not arrive within %s.", d), outcome: outcomeInvalid}
}

// errMemoryBudgetFull answers a request whose body does not fit in what is left of
// body_memory_bytes while other bodies are being read.
func errMemoryBudgetFull() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "memory_budget_full",
		msg:     "The gateway is reading too many request bodies at once; retry later.",
		outcome: outcomeShed, retryAfter: time.Second, cause: errMemoryBudget}
}

// errUnsupportedEncoding answers a body in a Content-Encoding the gateway does not decode.
func errUnsupportedEncoding(coding string) *apiError {
	return &apiError{status: http.StatusUnsupportedMediaType, typ: "invalid_request_error",
		code: "unsupported_content_encoding", outcome: outcomeInvalid,
		msg: fmt.Sprintf("Content-Encoding %q is not supported; send the body unencoded (identity) or gzip-encoded.", clip(coding))}
}
