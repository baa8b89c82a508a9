//! Random names and tokens, from the kernel's generator (getrandom): below both the login
//! ([`crate::auth`]) and the media store ([`crate::store`]), which must not use each other.

/// `n` random bytes as lower-case hex.
pub fn hex(n: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)?;
    Ok(hex::encode(buf))
}
