// The payment gateways configured for this service, by channel.
import { createAlipayGateway } from "./alipay/adapter.ts";
import { type AlipayConfig, alipayGatewayOptions } from "./alipay/config.ts";
import type { Channel, PaymentGateway } from "./gateway.ts";
import { createWechatPayGateway } from "./wechatpay/adapter.ts";
import { type WechatPayConfig, wechatPayGatewayOptions } from "./wechatpay/config.ts";

/** The gateways whose settings are complete; notifications come back to `<publicBaseUrl>/webhooks/<channel>`. */
export function createGateways(config: AlipayConfig & WechatPayConfig & { PUBLIC_BASE_URL?: string }): Partial<Record<Channel, PaymentGateway>> {
  const notifyUrl = (channel: Channel) => `${config.PUBLIC_BASE_URL}/webhooks/${channel}`;
  const alipay = alipayGatewayOptions(config, { notifyUrl: notifyUrl("alipay") });
  const wechatpay = wechatPayGatewayOptions(config, { notifyUrl: notifyUrl("wechatpay") });
  return {
    ...(alipay ? { alipay: createAlipayGateway(alipay) } : {}),
    ...(wechatpay ? { wechatpay: createWechatPayGateway(wechatpay) } : {}),
  };
}
