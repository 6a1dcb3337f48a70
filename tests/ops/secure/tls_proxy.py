"""A TLS terminator in front of tansu, for tests only.

tansu 0.6.0 cannot serve TLS (see tests/ops/secure/README.md): this accepts
TLS connections on LISTEN, checks the client certificate against
--client-ca when given (mTLS), and relays the decrypted bytes to the
plaintext broker at UPSTREAM. SASL passes through unchanged, so clients
speak SASL_SSL (or SSL) to it and tansu checks the credentials.

Usage: tls_proxy.py LISTEN_PORT UPSTREAM_PORT --cert CRT --key KEY [--client-ca CA]
Prints "ready" on stdout once listening; runs until killed.
"""

import argparse
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("upstream", type=int)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED

    async def relay(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", args.upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(
        relay, "127.0.0.1", args.listen, ssl=ctx, ssl_handshake_timeout=10
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
