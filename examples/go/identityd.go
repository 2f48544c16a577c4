// What a Go service needs to call identityd well: the error model, retries, and a middleware that
// validates the caller's session. Copy this file; main.go shows it at work.

package main

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	identityv1 "identityd.example/client/gen/identity/v1"
)

func init() {
	// Each process its own jitter (Go 1.20 and later seed math/rand by themselves).
	rand.Seed(time.Now().UnixNano())
}

// ErrorDomain is the ErrorInfo.domain of every error identityd returns.
const ErrorDomain = "identityd"

// Deadlines: every call gets one. ValidateSession sits on your request path, so keep it short; a
// login hashes a password (tens of milliseconds, longer when the server is busy).
const (
	ValidateTimeout = 500 * time.Millisecond
	CallTimeout     = 5 * time.Second
	LoginTimeout    = 10 * time.Second
)

// IdentitydError is what an identityd failure says: branch on Reason, never on Message.
type IdentitydError struct {
	Code    codes.Code
	Message string
	// Reason is ErrorInfo.reason, such as "INVALID_CREDENTIALS"; "" when not from identityd.
	Reason string
	// Metadata is ErrorInfo.metadata, such as {"field": "user_name"} with ALREADY_EXISTS.
	Metadata map[string]string
	// FieldViolations come in a BadRequest with INVALID_ARGUMENT.
	FieldViolations []*errdetails.BadRequest_FieldViolation
	// RetryDelay is RetryInfo.retry_delay; HasRetryInfo says whether the server sent one.
	RetryDelay   time.Duration
	HasRetryInfo bool
}

func (e *IdentitydError) Error() string {
	return fmt.Sprintf("identityd: %s %s: %s", e.Code, e.Reason, e.Message)
}

// Retryable says whether calling again unchanged may succeed. UNAVAILABLE (STORE_UNAVAILABLE,
// SHUTTING_DOWN, or no connection at all) and RESOURCE_EXHAUSTED with a RetryInfo (OVERLOADED) are.
// RESOURCE_EXHAUSTED without one is not: TOKEN_LIMIT_REACHED stays until a token is revoked,
// MESSAGE_TOO_LARGE until the request shrinks. ABORTED (CONCURRENT_CHANGE) means read again and
// decide again, which only the caller can do. DEADLINE_EXCEEDED is retried by CallWithRetry only for
// reads (Idempotent).
func (e *IdentitydError) Retryable() bool {
	return e.Code == codes.Unavailable || (e.Code == codes.ResourceExhausted && e.HasRetryInfo)
}

// ParseError reads the google.rpc.Status identityd sends in grpc-status-details-bin.
func ParseError(err error) *IdentitydError {
	st := status.Convert(err)
	result := &IdentitydError{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if d.Domain == ErrorDomain {
				result.Reason = d.Reason
				result.Metadata = d.Metadata
			}
		case *errdetails.BadRequest:
			result.FieldViolations = d.FieldViolations
		case *errdetails.RetryInfo:
			result.HasRetryInfo = true
			result.RetryDelay = d.RetryDelay.AsDuration()
		}
	}
	return result
}

// RetryPolicy says how often and how patiently CallWithRetry calls again.
type RetryPolicy struct {
	Attempts   int
	BaseDelay  time.Duration
	MaxDelay   time.Duration
	Timeout    time.Duration // the deadline of each attempt
	Idempotent bool          // a read: DEADLINE_EXCEEDED may be retried too
	OnRetry    func(*IdentitydError)
}

// DefaultRetry suits most calls.
var DefaultRetry = RetryPolicy{Attempts: 6, BaseDelay: 50 * time.Millisecond, MaxDelay: 5 * time.Second, Timeout: CallTimeout}

// CallWithRetry calls attempt until it succeeds, fails for good, policy.Attempts run out or ctx
// ends. It waits the server's RetryInfo.retry_delay when it gives one, otherwise exponential backoff
// from BaseDelay capped at MaxDelay; either way plus up to as much again at random, so that clients
// refused together do not come back together.
func CallWithRetry[T any](ctx context.Context, policy RetryPolicy, attempt func(context.Context) (T, error)) (T, error) {
	for n := 1; ; n++ {
		callCtx, cancel := context.WithTimeout(ctx, policy.Timeout)
		result, err := attempt(callCtx)
		cancel()
		if err == nil {
			return result, nil
		}
		failure := ParseError(err)
		retryable := failure.Retryable() || (policy.Idempotent && failure.Code == codes.DeadlineExceeded)
		if n >= policy.Attempts || !retryable {
			return result, err
		}
		if policy.OnRetry != nil {
			policy.OnRetry(failure)
		}
		delay := failure.RetryDelay
		if !failure.HasRetryInfo {
			delay = policy.BaseDelay << (n - 1)
			if delay > policy.MaxDelay {
				delay = policy.MaxDelay
			}
		}
		select {
		case <-time.After(delay + time.Duration(rand.Int63n(int64(delay)+1))):
		case <-ctx.Done():
			return result, ctx.Err()
		}
	}
}

// DefaultDeadline is a client interceptor giving every call whose context has no deadline one of d,
// so that no call waits without bound.
func DefaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// WithBearer names the caller of the calls made with the returned context: a session token or a
// user access token.
func WithBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

type sessionKey struct{}

// SessionFrom answers the session RequireSession validated for this request.
func SessionFrom(ctx context.Context) *identityv1.ValidateSessionResponse {
	session, _ := ctx.Value(sessionKey{}).(*identityv1.ValidateSessionResponse)
	return session
}

// RequireSession is HTTP middleware: it calls next only with a valid identityd session, read from
// `Authorization: Bearer <token>` and put in the request's context (SessionFrom). Invalid or
// missing: 401. identityd unreachable: 503, never a pass (fail closed).
func RequireSession(sessions identityv1.SessionServiceClient, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "bearer") || token == "" {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		// A short deadline and one retry: the request being served has its own deadline.
		policy := RetryPolicy{Attempts: 2, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, Timeout: ValidateTimeout, Idempotent: true}
		session, err := CallWithRetry(r.Context(), policy, func(ctx context.Context) (*identityv1.ValidateSessionResponse, error) {
			return sessions.ValidateSession(ctx, &identityv1.ValidateSessionRequest{SessionToken: token})
		})
		if err != nil {
			http.Error(w, "identityd: "+ParseError(err).Code.String(), http.StatusServiceUnavailable)
			return
		}
		// An unknown, expired, ended or malformed token is valid = false, not an error.
		if !session.Valid {
			http.Error(w, "session not valid: log in again", http.StatusUnauthorized)
			return
		}
		if session.IsForceChangePassword {
			http.Error(w, "change your password first", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, session)))
	})
}
