//! Many datagrams per system call on the media socket: `recvmmsg` and `sendmmsg` on Linux,
//! one datagram per call elsewhere. Forwarding sends each frame to every viewer, so a single
//! wake-up has dozens of datagrams to write; one call for all of them saves the kernel entry
//! and exit each would cost.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// Largest datagram read: a little over the Ethernet MTU, which WebRTC stays under.
pub const DATAGRAM_BUFFER: usize = 2048;

/// Receive buffers for one batch, reused from call to call.
pub struct ReceiveBatch {
    buffers: Vec<Box<[u8]>>,
    lengths: [usize; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    count: usize,
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        ReceiveBatch::with_datagram_size(DATAGRAM_BUFFER)
    }
}

impl ReceiveBatch {
    /// Buffers for datagrams of up to `bytes` each; longer ones arrive cut short.
    pub fn with_datagram_size(bytes: usize) -> Self {
        ReceiveBatch {
            buffers: (0..BATCH)
                .map(|_| vec![0; bytes].into_boxed_slice())
                .collect(),
            lengths: [0; BATCH],
            sources: [None; BATCH],
            count: 0,
        }
    }

    /// The datagrams of the last [`receive`], with where each came from.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.count)
            .filter_map(|i| Some((self.sources[i]?, &self.buffers[i][..self.lengths[i]])))
    }
}

/// A UDP socket batches are read from without waiting: tokio's, watched by the runtime, or
/// mio's, watched by a poll loop of our own (the TURN relay's).
pub trait Datagrams {
    /// One datagram, the fallback where batched calls are not available.
    #[cfg(not(target_os = "linux"))]
    fn receive_one(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    #[cfg(target_os = "linux")]
    fn raw_fd(&self) -> std::os::fd::RawFd;
}

impl Datagrams for UdpSocket {
    #[cfg(not(target_os = "linux"))]
    fn receive_one(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.try_recv_from(buffer)
    }
    #[cfg(target_os = "linux")]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

impl Datagrams for mio::net::UdpSocket {
    #[cfg(not(target_os = "linux"))]
    fn receive_one(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buffer)
    }
    #[cfg(target_os = "linux")]
    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// Reads what the socket holds, up to [`BATCH`] datagrams, without waiting; `WouldBlock`
/// when it holds nothing (and tokio then waits for readiness again).
pub fn receive(socket: &UdpSocket, batch: &mut ReceiveBatch) -> io::Result<usize> {
    batch.count = 0;
    let count = socket.try_io(tokio::io::Interest::READABLE, || {
        sys::receive(socket, batch)
    })?;
    batch.count = count;
    Ok(count)
}

/// [`receive`] for a socket no runtime watches.
pub fn receive_unwatched(
    socket: &mio::net::UdpSocket,
    batch: &mut ReceiveBatch,
) -> io::Result<usize> {
    batch.count = 0;
    batch.count = sys::receive(socket, batch)?;
    Ok(batch.count)
}

/// Whether a read of `count` datagrams left the socket empty, so that an edge-triggered
/// poll reports it again only when more arrive. `recvmmsg` takes all there are, up to a
/// batch; one datagram a call proves nothing until a read says `WouldBlock`.
pub fn emptied(count: usize) -> bool {
    cfg!(target_os = "linux") && count < BATCH
}

/// Writes `datagrams` without waiting and returns how many left. What the socket's buffer
/// cannot take now is dropped, as a router drops: media must never wait. A datagram the
/// kernel refuses (an address it cannot reach) is skipped, and the rest still go.
pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    let mut sent = 0;
    let mut next = 0;
    while next < datagrams.len() {
        let chunk = &datagrams[next..datagrams.len().min(next + BATCH)];
        match sys::send(socket, chunk) {
            Ok(0) => break,
            Ok(count) => {
                sent += count;
                next += count;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => {
                tracing::debug!(%error, destination = %chunk[0].0, "media datagram refused");
                next += 1;
            }
        }
    }
    sent
}

/// Asks for socket buffers of `bytes` each way, so a burst (a keyframe to many viewers)
/// fits; as root past the system's default ceiling. Best effort: the defaults still work.
pub fn enlarge_buffers(socket: &UdpSocket, bytes: usize) {
    sys::enlarge_buffers(socket, bytes);
}

#[cfg(target_os = "linux")]
mod sys {
    //! The Linux system calls, with the address conversions they need.

    use std::io;
    use std::mem::{size_of, zeroed, MaybeUninit};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use tokio::net::UdpSocket;

    use super::{Datagrams, ReceiveBatch, BATCH};

    pub fn receive(socket: &impl Datagrams, batch: &mut ReceiveBatch) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovecs[i] = libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: batch.buffers[i].len(),
            };
            let name_len = size_of::<libc::sockaddr_storage>() as u32;
            point(&mut headers[i], &mut names[i], name_len, &mut iovecs[i]);
        }
        // SAFETY: every header points at a live buffer and address of the sizes it states,
        // all of which outlive the call; the socket is non-blocking.
        let count = unsafe {
            libc::recvmmsg(
                socket.raw_fd(),
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = count as usize;
        for i in 0..count {
            batch.lengths[i] = headers[i].msg_len as usize;
            batch.sources[i] = from_storage(&names[i]);
        }
        Ok(count)
    }

    pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let count = datagrams.len().min(BATCH);
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (destination, contents)) in datagrams[..count].iter().enumerate() {
            iovecs[i] = libc::iovec {
                // The kernel only reads through this pointer.
                iov_base: contents.as_ptr() as *mut libc::c_void,
                iov_len: contents.len(),
            };
            let name_len = to_storage(*destination, &mut names[i]);
            point(&mut headers[i], &mut names[i], name_len, &mut iovecs[i]);
        }
        // SAFETY: the first `count` headers point at live contents and addresses of the sizes
        // they state, all of which outlive the call; the socket is non-blocking.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Points `header` at one address (`name_len` bytes of `name`) and one buffer.
    fn point(
        header: &mut libc::mmsghdr,
        name: &mut libc::sockaddr_storage,
        name_len: u32,
        iovec: &mut libc::iovec,
    ) {
        header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        header.msg_hdr.msg_namelen = name_len;
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }

    pub fn enlarge_buffers(socket: &UdpSocket, bytes: usize) {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for (forced, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            let set = |option| {
                // SAFETY: the value is a live c_int of the size passed.
                unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::SOL_SOCKET,
                        option,
                        (&value as *const libc::c_int).cast(),
                        size_of::<libc::c_int>() as u32,
                    )
                }
            };
            if set(forced) != 0 {
                set(plain);
            }
        }
    }

    fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, which it is large
                // and aligned enough for.
                let v4 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(v4.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let v6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Writes `address` into `storage` and returns the length to pass with it.
    fn to_storage(address: SocketAddr, storage: &mut libc::sockaddr_storage) -> u32 {
        match address {
            SocketAddr::V4(v4) => {
                let raw = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                let slot: &mut MaybeUninit<libc::sockaddr_in> =
                    // SAFETY: sockaddr_storage is large and aligned enough for any address.
                    unsafe { &mut *(storage as *mut _ as *mut MaybeUninit<libc::sockaddr_in>) };
                slot.write(raw);
                size_of::<libc::sockaddr_in>() as u32
            }
            SocketAddr::V6(v6) => {
                let raw = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                let slot: &mut MaybeUninit<libc::sockaddr_in6> =
                    // SAFETY: as above.
                    unsafe { &mut *(storage as *mut _ as *mut MaybeUninit<libc::sockaddr_in6>) };
                slot.write(raw);
                size_of::<libc::sockaddr_in6>() as u32
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn addresses_survive_the_round_trip_through_c() {
            for address in [
                "127.0.0.1:3478".parse().unwrap(),
                "203.0.113.9:65535".parse().unwrap(),
                "[::1]:9".parse().unwrap(),
                "[2001:db8::7]:40000".parse::<SocketAddr>().unwrap(),
            ] {
                // SAFETY: all-zero is a valid sockaddr_storage.
                let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
                to_storage(address, &mut storage);
                assert_eq!(from_storage(&storage), Some(address));
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! One datagram per call, where the batched calls are not available.

    use std::io;
    use std::net::SocketAddr;

    use tokio::net::UdpSocket;

    use super::{Datagrams, ReceiveBatch};

    pub fn receive(socket: &impl Datagrams, batch: &mut ReceiveBatch) -> io::Result<usize> {
        let (length, source) = socket.receive_one(&mut batch.buffers[0])?;
        batch.lengths[0] = length;
        batch.sources[0] = Some(source);
        Ok(1)
    }

    pub fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
        let (destination, contents) = &datagrams[0];
        socket.try_send_to(contents, *destination).map(|_| 1)
    }

    pub fn enlarge_buffers(_socket: &UdpSocket, _bytes: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_goes_out_and_comes_back_whole_and_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enlarge_buffers(&receiver, 1 << 20);
        let to = receiver.local_addr().unwrap();
        // More than one batch, of different sizes.
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..BATCH * 2 + 5)
            .map(|i| (to, vec![i as u8; 1 + i * 7]))
            .collect();
        assert_eq!(send(&sender, &datagrams), datagrams.len());
        let from = sender.local_addr().unwrap();
        let mut batch = ReceiveBatch::default();
        let mut got = Vec::new();
        while got.len() < datagrams.len() {
            receiver.readable().await.unwrap();
            match receive(&receiver, &mut batch) {
                Ok(_) => got.extend(batch.datagrams().map(|(source, d)| {
                    assert_eq!(source, from);
                    d.to_vec()
                })),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => panic!("{error}"),
            }
        }
        let sent: Vec<Vec<u8>> = datagrams.into_iter().map(|(_, d)| d).collect();
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn an_unreachable_destination_does_not_stop_the_rest() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        // An IPv6 destination from an IPv4 socket: the kernel refuses that one datagram.
        let datagrams = vec![
            (to, b"one".to_vec()),
            ("[::1]:9".parse().unwrap(), b"lost".to_vec()),
            (to, b"two".to_vec()),
        ];
        assert_eq!(send(&sender, &datagrams), 2);
        let mut buffer = [0; 16];
        let (n, _) = receiver.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..n], b"one");
        let (n, _) = receiver.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..n], b"two");
    }
}
