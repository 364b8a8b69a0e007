"""Makes the test operator of tests/nats.rs: operator.jwt, user.creds and accounts.conf
(the system account and the account `relay`, JetStream enabled, preloaded into a MEMORY
resolver). Test keys only, made offline without nsc: `python3 make.py` (needs the
`cryptography` package). The JWTs do not expire."""
import base64, os, json, hashlib, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
def crc16(data):
    crc=0
    for b in data:
        crc ^= b<<8
        for _ in range(8):
            crc = ((crc<<1)^0x1021) if crc & 0x8000 else (crc<<1)
            crc &= 0xffff
    return crc
def enc(raw):
    c=crc16(raw); raw=raw+bytes([c&0xff, c>>8])
    return base64.b32encode(raw).decode().rstrip('=')
SEED=18<<3
PFX={'O':14<<3,'A':0,'U':20<<3}
def keypair(kind):
    raw=os.urandom(32)
    k=Ed25519PrivateKey.from_private_bytes(raw)
    pub=k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    p=PFX[kind]
    seed=enc(bytes([SEED | (p>>5), (p&31)<<3])+raw)
    return k, seed, enc(bytes([p])+pub)
def b64(b): return base64.urlsafe_b64encode(b).decode().rstrip('=')
def jwt(signer, iss, sub, name, nats, iat=1764633600):
    claims={"iat":iat,"iss":iss,"name":name,"sub":sub,"nats":nats}
    h=hashlib.sha512(json.dumps(claims,separators=(',',':')).encode()).digest()[:32]
    claims={"jti":base64.b32encode(h).decode().rstrip('='),**claims}
    header=b64(json.dumps({"typ":"JWT","alg":"ed25519-nkey"},separators=(',',':')).encode())
    body=b64(json.dumps(claims,separators=(',',':')).encode())
    sig=signer.sign((header+"."+body).encode())
    return header+"."+body+"."+b64(sig)
ok,oseed,opub=keypair('O')
sk,sseed,spub=keypair('A')
ak,aseed,apub=keypair('A')
uk,useed,upub=keypair('U')
op=jwt(ok,opub,opub,"relay-op",{"type":"operator","version":2,"system_account":spub})
lim={"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":True,"conn":-1,"leaf":-1}
sys=jwt(ok,opub,spub,"SYS",{"limits":lim,"default_permissions":{"pub":{},"sub":{}},"type":"account","version":2})
jslim=dict(lim,mem_storage=-1,disk_storage=-1,streams=-1,consumer=-1)
acc=jwt(ok,opub,apub,"relay",{"limits":jslim,"default_permissions":{"pub":{},"sub":{}},"type":"account","version":2})
usr=jwt(ak,apub,upub,"relay-user",{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2})
open("operator.jwt","w").write(op)
creds=f"""-----BEGIN NATS USER JWT-----
{usr}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{useed}
------END USER NKEY SEED------

*************************************************************
"""
open("user.creds","w").write(creds)
conf=f"""system_account: {spub}
resolver: MEMORY
resolver_preload: {{
  {spub}: "{sys}"
  {apub}: "{acc}"
}}
"""
open("accounts.conf","w").write(conf)
