/// What a user may do beyond using their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages every tenant; the bootstrap administrator has it.
    SystemAdmin,
    /// Manages the users and service accounts of their own tenant.
    TenantAdmin,
    /// May log into the client tenants that their tenant serves.
    CustomerSupport,
    /// May log in as another user of their own tenant.
    ProxyLogin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::SystemAdmin,
        Role::TenantAdmin,
        Role::CustomerSupport,
        Role::ProxyLogin,
    ];

    fn bit(self) -> i32 {
        match self {
            Role::SystemAdmin => 1,
            Role::TenantAdmin => 2,
            Role::CustomerSupport => 4,
            Role::ProxyLogin => 8,
        }
    }
}

/// A set of roles, stored as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(i32);

impl Roles {
    pub fn from_bits(bits: i32) -> Self {
        let known = Role::ALL.iter().fold(0, |acc, r| acc | r.bit());
        Self(bits & known)
    }

    pub fn bits(self) -> i32 {
        self.0
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<T: IntoIterator<Item = Role>>(iter: T) -> Self {
        Self(iter.into_iter().fold(0, |acc, r| acc | r.bit()))
    }
}
