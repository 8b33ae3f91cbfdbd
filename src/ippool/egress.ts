/** The source a delivery attempt uses: an egress IP and the name it greets with. */
export interface Egress {
  /** null = the operating system's default source address. */
  address: string | null;
  /** EHLO/HELO name. */
  hostname: string;
}
