//! Joining a byte stream and a tunnel: bytes both ways until each side has
//! ended, as a proxy's inbound and outbound paths do.
//!
//! This is the bulk data path, so it avoids copies `tokio::io::copy` would
//! make: bytes read from the stream are handed to HTTP/2 as they are (no copy
//! into a frame buffer), and received DATA frames are written out as they
//! arrive (no copy into a bounce buffer). Read buffers are reused once the
//! frames cut from them have been sent.

use std::{future::poll_fn, pin::pin};

use bytes::{Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{self, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{HboneStream, stream::to_io};

/// Bytes read from the stream at once, at most.
const READ_CHUNK: usize = 128 * 1024;

/// What a read buffer starts at: connections that carry little keep little
/// memory (and none while they wait for bytes), bulk ones grow to
/// [`READ_CHUNK`].
const FIRST_CHUNK: usize = 2 * 1024;

/// Copies `stream` into `tunnel` and back until both directions end, with
/// TCP's half-close semantics: the end of one direction is passed on as a
/// half-close while the other keeps flowing. Returns the bytes sent into
/// the tunnel and received from it. On an error the tunnel is reset (when
/// dropped) and the error returned.
pub async fn splice<S>(mut stream: S, mut tunnel: HboneStream) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = io::split(&mut stream);
    let (send, recv, pending, write_closed) = tunnel.parts();
    let outgoing = async {
        let sent = forward(&mut reader, send).await?;
        *write_closed = true;
        Ok::<_, io::Error>(sent)
    };
    let incoming = backward(recv, pending, &mut writer);
    io::Result::Ok(tokio::try_join!(outgoing, incoming)?)
}

/// Stream → tunnel, then `END_STREAM`.
async fn forward<R: AsyncRead + Unpin>(
    reader: &mut R,
    send: &mut SendStream<Bytes>,
) -> io::Result<u64> {
    let mut buf = BytesMut::new();
    let mut chunk_size = FIRST_CHUNK;
    let mut total = 0u64;
    loop {
        let mut room = 0;
        let n = poll_fn(|cx| {
            if buf.capacity() < chunk_size / 4 {
                // Reclaims the old allocation when every frame cut from it
                // has been written out; allocates otherwise.
                buf.reserve(chunk_size);
            }
            room = buf.capacity();
            // A fresh read future per poll: it keeps no state between polls,
            // and dropping it frees `buf` for the line below.
            let read = pin!(reader.read_buf(&mut buf)).poll(cx);
            if read.is_pending() && chunk_size == FIRST_CHUNK {
                // Nothing to read: a connection that carries little does not
                // keep its buffer while it waits (most of them are idle most
                // of the time). Bulk ones keep theirs to spare allocations.
                buf = BytesMut::new();
            }
            read
        })
        .await?;
        if n == 0 {
            send.send_data(Bytes::new(), true).map_err(to_io)?;
            return Ok(total);
        }
        // Grow while reads fill the buffer; shrink back when they do not.
        chunk_size = if n == room {
            (chunk_size * 2).min(READ_CHUNK)
        } else if n < chunk_size / 8 {
            (chunk_size / 2).max(FIRST_CHUNK)
        } else {
            chunk_size
        };
        let mut chunk = buf.split().freeze();
        total += chunk.len() as u64;
        while !chunk.is_empty() {
            send.reserve_capacity(chunk.len());
            let window = poll_fn(|cx| send.poll_capacity(cx)).await;
            match window {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let part = chunk.split_to(n.min(chunk.len()));
                    send.send_data(part, false).map_err(to_io)?;
                }
                Some(Err(e)) => return Err(to_io(e)),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the HBONE stream was closed",
                    ));
                }
            }
        }
    }
}

/// Tunnel → stream, then a half-close of the stream.
async fn backward<W: AsyncWrite + Unpin>(
    recv: &mut RecvStream,
    pending: &mut Bytes,
    writer: &mut W,
) -> io::Result<u64> {
    let mut total = pending.len() as u64;
    if !pending.is_empty() {
        writer.write_all(pending).await?;
        pending.clear();
    }
    while let Some(data) = poll_fn(|cx| recv.poll_data(cx)).await {
        let data = data.map_err(to_io)?;
        writer.write_all(&data).await?;
        total += data.len() as u64;
        // Reopen the window only once the bytes are out: a slow reader
        // holds back the sender instead of growing memory here.
        let _ = recv.flow_control().release_capacity(data.len());
    }
    writer.shutdown().await?;
    Ok(total)
}
