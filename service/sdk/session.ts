// Account sessions: Sign-In with Ethereum (EIP-4361) for smart accounts, as the service checks it
// (service/sessions/README.md). ERC-1271 accounts sign for themselves (ERC-6492 while undeployed);
// owner-controlled accounts without ERC-1271, such as eth-infinitism's SimpleAccount, sign with the
// owner's key and name the owner, plus the factory call while the account is not deployed.
import type { Address, Hex } from "viem";
import { createSiweMessage } from "viem/siwe";

import { AuthenticationError } from "./errors.ts";
import type { Transport } from "./http.ts";
import { address, addressParameter, invalidParameter, isoDate, string } from "./wire.ts";

/** A signed-in session: pass it to `fiatGasPaymaster`, `getBalance` and `requestRefund`. */
export type FiatGasSession = {
  /** The bearer token; secret. */
  token: string;
  /** The account the session may spend for. */
  address: Address;
  /** When the service stops accepting the token; sign in again before. */
  expiresAt: Date;
};

/** A session, or its bare token. */
export type SessionInput = FiatGasSession | string;

/** Anything that signs an EIP-191 message: a viem LocalAccount (`address`) or a WalletClient with an account (`account`). */
export type MessageSigner =
  | { address: Address; signMessage: (parameters: { message: string }) => Promise<Hex> }
  | { account: { address: Address }; signMessage: (parameters: { message: string }) => Promise<Hex> };

/** The account signing in: its address, or a viem/permissionless SmartAccount (which also supplies its signer, factory call and chain). */
export type SignInAccount =
  | Address
  | {
      address: Address;
      signMessage?: ((parameters: { message: string }) => Promise<Hex>) | undefined;
      getFactoryArgs?: (() => Promise<{ factory?: Address | undefined; factoryData?: Hex | undefined }>) | undefined;
      client?: { chain?: { id: number } | undefined } | undefined;
    };

export type SignInParameters = {
  /** The smart account (or EOA) that will send UserOperations. */
  account: SignInAccount;
  /** The chain the service serves; taken from a SmartAccount's client when absent. */
  chainId?: number | undefined;
  /** The service's SIWE_DOMAIN (`host[:port]`); in a browser, `location.host` by default. */
  domain?: string | undefined;
  /** The message's URI (the service's SIWE_URI if it sets one); `location.origin` in a browser, else `https://<domain>`. */
  uri?: string | undefined;
  statement?: string | undefined;
  expirationTime?: Date | undefined;
  notBefore?: Date | undefined;
  requestId?: string | undefined;
  resources?: string[] | undefined;
  /**
   * The owner's key, for owner-controlled accounts without ERC-1271 (eth-infinitism SimpleAccount).
   * The service checks the owner signed, then that it owns the account: `owner()` once deployed,
   * the factory call before.
   */
  owner?: MessageSigner | undefined;
  /** The account's factory while it is undeployed (owner path); from `account.getFactoryArgs()` when absent. */
  factory?: Address | undefined;
  factoryData?: Hex | undefined;
  /**
   * Signs for the account itself: ERC-1271 (wrapped per ERC-6492 while undeployed) or an EOA's own
   * key. Defaults to `account.signMessage` when `account` is a SmartAccount and there is no `owner`.
   */
  signMessage?: ((parameters: { message: string }) => Promise<Hex>) | undefined;
  signal?: AbortSignal | undefined;
};

/** The body `POST /v1/auth/sign-in` takes. */
type SignInBody = { message: string; signature: Hex; owner?: Address; factory?: Address; factoryData?: Hex };

/** The browser's location, when there is one. */
function browserLocation(): { host: string; origin: string } | undefined {
  const location = (globalThis as { location?: { host?: unknown; origin?: unknown } }).location;
  return typeof location?.host === "string" && typeof location.origin === "string" ? { host: location.host, origin: location.origin } : undefined;
}

/** A fresh single-use sign-in nonce. */
export async function getNonce(transport: Transport, { signal }: { signal?: AbortSignal | undefined } = {}): Promise<string> {
  const answer = await transport.request<{ nonce?: unknown }>("GET", "/v1/auth/nonce", { signal });
  return string(answer?.nonce, "nonce");
}

/** Signs an EIP-4361 message for `account` with the right signer and opens a session. */
export async function signIn(transport: Transport, parameters: SignInParameters): Promise<FiatGasSession> {
  const { account, owner, signal } = parameters;
  const accountObject = typeof account === "string" ? undefined : account;
  const accountAddress = addressParameter(typeof account === "string" ? account : account?.address, "account");
  if (owner && parameters.signMessage) throw invalidParameter("pass owner (owner-signed accounts) or signMessage (ERC-1271 accounts and EOAs), not both", "owner");
  const signMessage = owner ? undefined : (parameters.signMessage ?? (accountObject?.signMessage ? (args: { message: string }) => accountObject.signMessage!(args) : undefined));
  if (!owner && !signMessage) {
    throw invalidParameter("nothing can sign: pass owner for an owner-controlled account without ERC-1271, or signMessage, or a SmartAccount as account", "owner");
  }
  const chainId = parameters.chainId ?? accountObject?.client?.chain?.id;
  if (chainId === undefined) throw invalidParameter("chainId is required (the chain the service serves)", "chainId");
  const location = browserLocation();
  const domain = parameters.domain ?? location?.host;
  if (!domain) throw invalidParameter("domain is required outside a browser: the service's SIWE_DOMAIN", "domain");
  const uri = parameters.uri ?? (parameters.domain === undefined && location ? location.origin : `https://${domain}`);

  const nonce = await getNonce(transport, { signal });
  let message: string;
  try {
    message = createSiweMessage({
      address: accountAddress,
      chainId,
      domain,
      nonce,
      uri,
      version: "1",
      issuedAt: new Date(),
      ...(parameters.statement === undefined ? {} : { statement: parameters.statement }),
      ...(parameters.expirationTime === undefined ? {} : { expirationTime: parameters.expirationTime }),
      ...(parameters.notBefore === undefined ? {} : { notBefore: parameters.notBefore }),
      ...(parameters.requestId === undefined ? {} : { requestId: parameters.requestId }),
      ...(parameters.resources === undefined ? {} : { resources: parameters.resources }),
    });
  } catch (error) {
    throw invalidParameter(`the sign-in message cannot be built: ${(error as { shortMessage?: string }).shortMessage ?? String(error)}`, "message", error);
  }

  let body: SignInBody;
  if (owner) {
    const ownerAddress = addressParameter("address" in owner ? owner.address : owner.account?.address, "owner.address");
    let { factory, factoryData } = parameters;
    // Deployed accounts need no factory call (the service reads owner() instead); a SmartAccount says which it is.
    if ((factory === undefined || factoryData === undefined) && accountObject?.getFactoryArgs) {
      ({ factory, factoryData } = await accountObject.getFactoryArgs());
    }
    const signature = await owner.signMessage({ message });
    body = { message, signature, owner: ownerAddress, ...(factory && factoryData ? { factory, factoryData } : {}) };
  } else {
    body = { message, signature: await signMessage!({ message }) };
  }

  const answer = await transport.request<{ token?: unknown; address?: unknown; expiresAt?: unknown }>("POST", "/v1/auth/sign-in", { body, signal });
  return { token: string(answer?.token, "token"), address: address(answer?.address, "address"), expiresAt: isoDate(answer?.expiresAt, "expiresAt") };
}

/** Ends a session before it expires; the token stops working at once. */
export async function signOut(transport: Transport, session: SessionInput, { signal }: { signal?: AbortSignal | undefined } = {}): Promise<void> {
  await transport.request("POST", "/v1/auth/sign-out", { token: tokenOf(session), signal });
}

/** The bearer token of a session. */
export function tokenOf(session: SessionInput): string {
  const token = typeof session === "string" ? session : session?.token;
  if (typeof token !== "string" || token === "") throw new AuthenticationError({ code: "UNAUTHENTICATED", message: "no session: sign in first" });
  return token;
}

/** The account a session is for and its token; `account` is needed with a bare token. */
export function sessionTarget(session: SessionInput, account: Address | undefined): { token: string; account: Address } {
  const token = tokenOf(session);
  const target = account ?? (typeof session === "string" ? undefined : session.address);
  if (target === undefined) throw invalidParameter("account is required with a bare session token", "account");
  return { token, account: addressParameter(target, "account") };
}
