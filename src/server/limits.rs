//! Connection limits: in total and per client address, so that one client cannot take
//! every connection the server has. An IPv6 client owns a whole /64 (and can pick any address
//! in it), so IPv6 addresses count per /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::core::Refusal;
use crate::protocol::ErrorCode;

#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
        })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let ip = address_group(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::new(
                ErrorCode::TooManyConnections,
                format!(
                    "the server is at its limit of {} connections; try again later",
                    self.max_total
                ),
            ));
        }
        let from_ip = open.per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::new(
                ErrorCode::TooManyConnections,
                format!(
                    "your address already has {} connections, the limit; close some tabs",
                    self.max_per_ip
                ),
            ));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl ConnectionPermit {
    /// The address this connection counts against (an IPv6 client's /64).
    pub fn address(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The address a limit counts against: IPv4 as is (also when written as IPv4-mapped IPv6),
/// IPv6 by its /64 network.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_per_address_and_in_total_and_free_up_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert!(limits
            .admit(a)
            .unwrap_err()
            .message
            .contains("your address"));
        let _third = limits.admit(b).unwrap();
        assert!(limits
            .admit(b)
            .unwrap_err()
            .message
            .contains("3 connections"));
        drop(first);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = ConnectionLimits::new(10, 2);
        let _a = limits.admit("2001:db8::1".parse().unwrap()).unwrap();
        let _b = limits.admit("2001:db8::ffff:2".parse().unwrap()).unwrap();
        assert!(limits.admit("2001:db8::3:3".parse().unwrap()).is_err());
        assert!(limits.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let _c = limits.admit("10.0.0.1".parse().unwrap()).unwrap();
        let _d = limits.admit("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert!(limits.admit("10.0.0.1".parse().unwrap()).is_err());
    }
}
