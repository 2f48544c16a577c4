//! A real identityd on an OS-chosen port over a fresh database, with generated clients.

use std::sync::Arc;

use identityd::clock::ManualClock;
use identityd::config::Config;
use identityd::core::{BootstrapRequest, Identity};
use identityd::grpc::pb;
use identityd::grpc::pb::access_token_service_client::AccessTokenServiceClient;
use identityd::grpc::pb::admin_service_client::AdminServiceClient;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use identityd::startup::Application;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use super::db::{StoreKind, TestDb};
use super::postgres::database_url;

pub const ADMIN_USER: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const ADMIN_TENANT: &str = "Example Inc.";
/// The key-encryption key every test server seals its signing keys with (32 bytes, base64), so
/// that no test writes a key file into the working directory.
pub const TEST_KEY_ENCRYPTION_KEY: &str = "dGVzdHMgc2VhbCBzaWduaW5nIGtleXMgd2l0aCBpdCE=";

/// Which store a test runs on, and where its databases are created.
#[derive(Clone)]
pub struct TestEnv {
    pub store: StoreKind,
    pub postgres_base_url: String,
}

/// One running server over its own database.
pub struct TestApp {
    pub clock: ManualClock,
    /// The server's address; a restart changes it.
    pub addr: std::net::SocketAddr,
    /// The admin listener's address, when the configuration names one.
    pub admin_addr: Option<std::net::SocketAddr>,
    pub channel: Channel,
    pub login: LoginServiceClient<Channel>,
    pub sessions: SessionServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
    /// The test database, to check what is stored.
    pub db: TestDb,
    /// The configuration the server was built from; a restart reuses it.
    pub config: Config,
    /// The running server's core, to drive its background work (the revocation poll) from a test.
    pub identity: Identity,
    /// The bootstrap administrator's session token, tenant and id.
    pub admin_token: String,
    pub admin_tenant_id: String,
    pub admin_user_id: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    env: TestEnv,
    /// The Postgres database to drop, or the SQLite directory to remove, at the end.
    db_name: String,
    sqlite_dir: Option<std::path::PathBuf>,
}

impl TestApp {
    pub async fn spawn(env: &TestEnv) -> TestApp {
        Self::spawn_with(env, |_| {}).await
    }

    /// Spawns with a configuration adjusted by `tweak`.
    pub async fn spawn_with(env: &TestEnv, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db_name = format!("identityd_test_{}", uuid::Uuid::new_v4().simple());
        let (database_url, sqlite_dir) = match env.store {
            StoreKind::Postgres => {
                let mut maintenance = sqlx::PgConnection::connect(&env.postgres_base_url)
                    .await
                    .expect("connect to Postgres");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
                    .execute(&mut maintenance)
                    .await
                    .expect("create test database");
                maintenance.close().await.ok();
                (database_url(&env.postgres_base_url, &db_name), None)
            }
            StoreKind::Sqlite => {
                let dir = std::env::temp_dir().join(&db_name);
                (format!("sqlite://{}", dir.join("identityd.db").display()), Some(dir))
            }
        };
        let mut config = Config::for_database(&database_url);
        config.db_max_connections = 8;
        config.key_encryption_key = Some(TEST_KEY_ENCRYPTION_KEY.into());
        tweak(&mut config);
        let clock = ManualClock::default();
        let app = Application::build_with_clock(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("build the application");
        let bootstrap = BootstrapRequest {
            tenant_name: ADMIN_TENANT.into(),
            user_name: ADMIN_USER.into(),
            password: ADMIN_PASSWORD.into(),
            email: ADMIN_USER.into(),
        };
        assert!(app.identity().bootstrap(&bootstrap).await.expect("bootstrap"));
        let identity = app.identity().clone();
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let (channel, shutdown, server) = serve(app).await;
        let mut app = TestApp {
            clock,
            addr,
            admin_addr,
            login: LoginServiceClient::new(channel.clone()),
            sessions: SessionServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            channel,
            db: TestDb {
                kind: env.store,
                url: database_url,
            },
            config,
            identity,
            admin_token: String::new(),
            admin_tenant_id: String::new(),
            admin_user_id: String::new(),
            shutdown: Some(shutdown),
            server: Some(server),
            env: env.clone(),
            db_name,
            sqlite_dir,
        };
        let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
        app.admin_token = login.session_token;
        app.admin_tenant_id = login.organization_id;
        app.admin_user_id = login.user.unwrap().user_id;
        app
    }

    /// Stops the server and starts a new one over the same database and clock, as after a restart
    /// of the process; the clients follow it to its new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let app = Application::build_with_clock(self.config.clone(), Arc::new(self.clock.clone()))
            .await
            .expect("rebuild the application");
        self.identity = app.identity().clone();
        self.addr = app.local_addr();
        self.admin_addr = app.admin_addr();
        let (channel, shutdown, server) = serve(app).await;
        self.talk_to(channel);
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    /// Starts a second server over the same database and clock, as another instance behind the
    /// same load balancer would be; returns its session client and a handle that stops it.
    pub async fn second_instance(&self) -> (SessionServiceClient<Channel>, Instance) {
        self.second_instance_with(|_| {}).await
    }

    /// [`Self::second_instance`] with its configuration adjusted by `tweak`.
    pub async fn second_instance_with(
        &self,
        tweak: impl FnOnce(&mut Config),
    ) -> (SessionServiceClient<Channel>, Instance) {
        let mut config = self.config.clone();
        tweak(&mut config);
        let app = Application::build_with_clock(config, Arc::new(self.clock.clone()))
            .await
            .expect("build a second instance");
        let identity = app.identity().clone();
        let (channel, shutdown, server) = serve(app).await;
        (
            SessionServiceClient::new(channel.clone()),
            Instance {
                identity,
                channel,
                shutdown: Some(shutdown),
                server: Some(server),
            },
        )
    }

    /// Tells the server to stop, without waiting for it; [`Self::stop`] waits.
    pub fn request_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server gracefully (in-flight calls finish, last-use times are written) and waits.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran cleanly");
        }
    }

    /// Points every client at `channel` (another server over the same database) from now on.
    pub fn talk_to(&mut self, channel: Channel) {
        self.login = LoginServiceClient::new(channel.clone());
        self.sessions = SessionServiceClient::new(channel.clone());
        self.admin = AdminServiceClient::new(channel.clone());
        self.channel = channel;
    }

    /// Stops the server and removes its database.
    pub async fn finish(mut self) {
        self.stop().await;
        match self.env.store {
            StoreKind::Postgres => {
                if let Ok(mut c) = sqlx::PgConnection::connect(&self.env.postgres_base_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name);
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut c).await;
                }
            }
            StoreKind::Sqlite => {
                if let Some(dir) = &self.sqlite_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }

    /// A login client whose connection comes from another local address (any of 127.0.0.0/8), as
    /// another machine's would.
    pub async fn login_from(&self, local: std::net::IpAddr) -> LoginServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .local_address(Some(local))
            .connect()
            .await
            .expect("connect from another address");
        LoginServiceClient::new(channel)
    }

    /// A client of the access-token service on this server.
    pub fn tokens(&self) -> AccessTokenServiceClient<Channel> {
        AccessTokenServiceClient::new(self.channel.clone())
    }

    pub async fn login(&self, user_name: &str, password: &str) -> Result<pb::LoginResponse, Status> {
        let request = pb::LoginRequest {
            user_name: user_name.into(),
            password: password.into(),
            ..Default::default()
        };
        self.login.clone().login(request).await.map(|r| r.into_inner())
    }

    pub async fn login_ok(&self, user_name: &str, password: &str) -> pb::LoginResponse {
        self.login(user_name, password)
            .await
            .unwrap_or_else(|e| panic!("login of {user_name} failed: {e:?}"))
    }

    /// Creates a user in a tenant as the bootstrap administrator.
    pub async fn create_user(&self, tenant_id: &str, user_name: &str, password: &str, roles: &[pb::Role]) -> pb::User {
        let request = pb::CreateUserRequest {
            user: Some(pb::User {
                tenant_id: tenant_id.into(),
                user_name: user_name.into(),
                email: user_name.into(),
                first_name: "Test".into(),
                last_name: "User".into(),
                roles: roles.iter().map(|r| *r as i32).collect(),
                ..Default::default()
            }),
            password: password.into(),
        };
        self.admin
            .clone()
            .create_user(bearer(request, &self.admin_token))
            .await
            .expect("create user")
            .into_inner()
            .user
            .unwrap()
    }

    pub async fn create_tenant(&self, name: &str) -> pb::Tenant {
        let request = pb::CreateTenantRequest {
            tenant: Some(pb::Tenant {
                name: name.into(),
                ..Default::default()
            }),
        };
        self.admin
            .clone()
            .create_tenant(bearer(request, &self.admin_token))
            .await
            .expect("create tenant")
            .into_inner()
            .tenant
            .unwrap()
    }

    /// Follows the whole server's health until it is `wanted` (see [`watch_health_until`]).
    pub async fn health_until(&self, wanted: ServingStatus) {
        watch_health_until(&mut HealthClient::new(self.channel.clone()), "", wanted).await;
    }

    pub async fn validate(&self, token: &str) -> pb::ValidateSessionResponse {
        self.sessions
            .clone()
            .validate_session(pb::ValidateSessionRequest {
                session_token: token.into(),
            })
            .await
            .expect("ValidateSession never fails for a bad token")
            .into_inner()
    }
}

/// Another running instance; [`Instance::stop`] stops it gracefully.
pub struct Instance {
    /// Its core, to see the state of its background work.
    pub identity: Identity,
    /// A connection to it, for clients of its other services.
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Instance {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran cleanly");
        }
    }
}

/// Serves a built application until the returned sender fires; returns a connected channel.
async fn serve(app: Application) -> (Channel, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    (channel, tx, server)
}

/// Wraps a message in a request with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Asserts a status's code and `ErrorInfo` reason.
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "unexpected reason in {status:?}");
    assert_eq!(info.domain, "identityd");
}

/// ALREADY_EXISTS naming the clashing field in `ErrorInfo.metadata["field"]`.
pub fn assert_already_exists(status: &Status, field: &str) {
    assert_error(status, Code::AlreadyExists, "ALREADY_EXISTS");
    assert_eq!(status.get_details_error_info().unwrap().metadata["field"], field);
}

/// The fields named by a status's `BadRequest` details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

impl TestApp {
    /// The time on the server's clock.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use identityd::clock::Clock;
        self.clock.now()
    }
}

/// Follows `service`'s health (the empty name: the whole server) until it is `wanted`, failing
/// after 30 s.
pub async fn watch_health_until(client: &mut HealthClient<Channel>, service: &str, wanted: ServingStatus) {
    let mut updates = client
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let wait = async {
        while let Some(update) = updates.message().await.expect("health stream") {
            if update.status == wanted as i32 {
                return;
            }
        }
        panic!("health stream ended before {wanted:?}");
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{service:?} never became {wanted:?}"));
}
