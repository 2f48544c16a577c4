// Command client shows how a Go service calls identityd, with a client generated from proto/ alone
// (buf generate: protoc-gen-go and protoc-gen-go-grpc). identityd.go holds what to copy; main logs
// in, uses a user access token, and shows each error a service should handle.
//
// Run it against a throwaway server with `examples/run.sh go`; it checks every answer and exits
// non-zero on the first one that is not what the contract promises.
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	identityv1 "identityd.example/client/gen/identity/v1"
)

var passed int

func check(condition bool, what string) {
	if !condition {
		fmt.Fprintf(os.Stderr, "FAILED: %s\n", what)
		fmt.Printf("go: %d passed, 1 failed\n", passed)
		os.Exit(1)
	}
	passed++
	fmt.Printf("ok: %s\n", what)
}

func must[T any](result T, err error) T {
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAILED: %v\n", err)
		fmt.Printf("go: %d passed, 1 failed\n", passed)
		os.Exit(1)
	}
	return result
}

func expectError[T any](_ T, err error) *IdentitydError {
	if err == nil {
		check(false, "the call succeeded, but an error was expected")
	}
	return ParseError(err)
}

func get(handler http.Handler, authorization string) (int, string) {
	request := httptest.NewRequest(http.MethodGet, "/hello", nil)
	if authorization != "" {
		request.Header.Set("Authorization", authorization)
	}
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, request)
	return recorder.Code, recorder.Body.String()
}

func main() {
	target := os.Getenv("IDENTITYD_TARGET")
	userName := os.Getenv("DEMO_USER")
	password := os.Getenv("DEMO_PASSWORD")
	ctx := context.Background()

	// In production use grpc.WithTransportCredentials(credentials.NewTLS(...)). One connection for
	// the whole process: it multiplexes calls and reconnects by itself. Every call gets a deadline:
	// its context's, or CallTimeout.
	conn := must(grpc.Dial(target, grpc.WithInsecure(), grpc.WithUnaryInterceptor(DefaultDeadline(CallTimeout))))
	defer conn.Close()
	login := identityv1.NewLoginServiceClient(conn)
	sessions := identityv1.NewSessionServiceClient(conn)
	tokens := identityv1.NewAccessTokenServiceClient(conn)
	loginPolicy := DefaultRetry
	loginPolicy.Timeout = LoginTimeout

	// Log in. The session token is returned only here: keep it as secret as the password.
	signedIn := must(CallWithRetry(ctx, loginPolicy, func(ctx context.Context) (*identityv1.LoginResponse, error) {
		return login.Login(ctx, &identityv1.LoginRequest{UserName: userName, Password: password})
	}))
	sessionToken := signedIn.SessionToken
	asUser := WithBearer(ctx, sessionToken)
	check(signedIn.GetUser().GetUserName() == userName && sessionToken != "", "Login with a password")
	me := must(sessions.GetCurrentUser(asUser, &identityv1.GetCurrentUserRequest{}))
	check(me.GetSession().GetSessionId() == signedIn.GetSession().GetSessionId(), "GetCurrentUser names the session")

	// A request middleware validating the caller's session.
	app := RequireSession(sessions, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session := SessionFrom(r.Context())
		fmt.Fprintf(w, "hello %s of tenant %s", session.UserName, session.TenantId)
	}))
	code, body := get(app, "Bearer "+sessionToken)
	check(code == http.StatusOK && strings.Contains(body, userName), fmt.Sprintf("middleware lets a valid session in: %q", body))
	code, _ = get(app, "")
	check(code == http.StatusUnauthorized, "middleware refuses a request without a token")
	code, _ = get(app, "Bearer not-a-session-token")
	check(code == http.StatusUnauthorized, "middleware refuses an unknown token")

	// Reasons and details. A wrong password says only INVALID_CREDENTIALS, as an unknown user does.
	failure := expectError(login.Login(ctx, &identityv1.LoginRequest{UserName: userName, Password: "not the password"}))
	check(failure.Code == codes.Unauthenticated && failure.Reason == "INVALID_CREDENTIALS" && !failure.Retryable(),
		fmt.Sprintf("a wrong password: %s %s", failure.Code, failure.Reason))
	failure = expectError(tokens.CreateUserAccessToken(asUser, &identityv1.CreateUserAccessTokenRequest{UserAccessTokenName: ""}))
	named := false
	for _, violation := range failure.FieldViolations {
		named = named || violation.Field == "user_access_token_name"
	}
	check(failure.Code == codes.InvalidArgument && failure.Reason == "INVALID_ARGUMENT" && named,
		fmt.Sprintf("bad input names its fields in a BadRequest: %v", failure.FieldViolations))
	failure = expectError(sessions.GetCurrentUser(ctx, &identityv1.GetCurrentUserRequest{}))
	check(failure.Code == codes.Unauthenticated && failure.Reason == "MISSING_CREDENTIALS",
		fmt.Sprintf("no bearer: %s %s", failure.Code, failure.Reason))

	// A user access token for a script: created with a session opened by signing in; its secret is
	// returned only here.
	days := int32(1)
	created := must(tokens.CreateUserAccessToken(asUser, &identityv1.CreateUserAccessTokenRequest{
		UserAccessTokenName: "go-example",
		Description:         "the Go client example",
		ExpirationDays:      &days,
	}))
	secret := created.Token
	check(strings.HasPrefix(secret, "idat_") && created.GetUserAccessToken().GetName() == "go-example", "CreateUserAccessToken answers the secret once")
	asToken := must(sessions.GetCurrentUser(WithBearer(ctx, secret), &identityv1.GetCurrentUserRequest{}))
	check(asToken.GetUser().GetUserName() == userName, "the token as the bearer reads (GetCurrentUser)")
	tokenLogin := must(CallWithRetry(ctx, loginPolicy, func(ctx context.Context) (*identityv1.LoginResponse, error) {
		return login.Login(ctx, &identityv1.LoginRequest{Token: secret})
	}))
	check(tokenLogin.SessionToken != "", "Login with the token opens a session")
	for _, c := range []struct{ credential, how string }{{secret, "the token"}, {tokenLogin.SessionToken, "a session opened with it"}} {
		failure = expectError(tokens.CreateUserAccessToken(WithBearer(ctx, c.credential),
			&identityv1.CreateUserAccessTokenRequest{UserAccessTokenName: "minted-by-a-token"}))
		check(failure.Code == codes.PermissionDenied && failure.Reason == "ACCESS_TOKEN_NOT_ALLOWED",
			fmt.Sprintf("%s may not change anything: %s", c.how, failure.Reason))
	}
	must(tokens.DeleteUserAccessToken(asUser, &identityv1.DeleteUserAccessTokenRequest{UserAccessTokenName: "go-example"}))
	failure = expectError(login.Login(ctx, &identityv1.LoginRequest{Token: secret}))
	check(failure.Code == codes.Unauthenticated && failure.Reason == "TOKEN_REVOKED", "a deleted token is refused: "+failure.Reason)
	ended := must(sessions.ValidateSession(ctx, &identityv1.ValidateSessionRequest{SessionToken: tokenLogin.SessionToken}))
	check(!ended.Valid, "the sessions opened with a deleted token end with it")

	// RESOURCE_EXHAUSTED that retrying does not cure: TOKEN_LIMIT_REACHED has no RetryInfo. (The
	// example server allows a few live tokens per user.)
	var names []string
	for n := 0; n < 100; n++ {
		name := fmt.Sprintf("limit-%d", n)
		_, err := tokens.CreateUserAccessToken(asUser, &identityv1.CreateUserAccessTokenRequest{UserAccessTokenName: name, ExpirationDays: &days})
		if err != nil {
			failure = ParseError(err)
			break
		}
		names = append(names, name)
	}
	check(failure.Code == codes.ResourceExhausted && failure.Reason == "TOKEN_LIMIT_REACHED" && !failure.HasRetryInfo && !failure.Retryable(),
		fmt.Sprintf("after %d tokens: %s, not retryable", len(names), failure.Reason))
	for _, name := range names {
		must(tokens.DeleteUserAccessToken(asUser, &identityv1.DeleteUserAccessTokenRequest{UserAccessTokenName: name}))
	}

	// RESOURCE_EXHAUSTED that retrying does cure: a login storm beyond the server's hashing capacity
	// answers OVERLOADED with a RetryInfo, and CallWithRetry waits and tries again. 8 logins at once
	// overload the example server (one hashing thread, no queue); a few rounds at most, in case they
	// happened to arrive one by one.
	var mu sync.Mutex
	var overloaded []string
	stormPolicy := loginPolicy
	stormPolicy.Attempts = 10
	stormPolicy.OnRetry = func(e *IdentitydError) {
		mu.Lock()
		defer mu.Unlock()
		overloaded = append(overloaded, e.Reason)
	}
	loggedIn := 0
	for round := 0; round < 5 && len(overloaded) == 0; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, errs[i] = CallWithRetry(ctx, stormPolicy, func(ctx context.Context) (*identityv1.LoginResponse, error) {
					return login.Login(ctx, &identityv1.LoginRequest{UserName: userName, Password: password})
				})
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			must(0, err)
			loggedIn++
		}
	}
	sawOverloaded := false
	for _, reason := range overloaded {
		sawOverloaded = sawOverloaded || reason == "OVERLOADED"
	}
	check(sawOverloaded && loggedIn%8 == 0, fmt.Sprintf("a login storm: %d OVERLOADED answers retried, all %d logins in", len(overloaded), loggedIn))

	// Log out: the session token is refused from then on.
	must(login.Logout(asUser, &identityv1.LogoutRequest{}))
	after := must(sessions.ValidateSession(ctx, &identityv1.ValidateSessionRequest{SessionToken: sessionToken}))
	check(!after.Valid, "after Logout the session is not valid")
	code, _ = get(app, "Bearer "+sessionToken)
	check(code == http.StatusUnauthorized, "middleware refuses the ended session")

	fmt.Printf("go: %d passed, 0 failed\n", passed)
}
