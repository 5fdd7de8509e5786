# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send one message over SMTP and print every reply code as JSON (never raises on a refusal).

usage: smtp_send.py HOST PORT MAIL_FROM RCPT FILE
"""
import json
import smtplib
import sys


def main():
    host, port, mail_from, rcpt, path = sys.argv[1:6]
    with open(path, "rb") as handle:
        data = handle.read()
    result = {}
    client = smtplib.SMTP(host, int(port), local_hostname="sender.test", timeout=30)
    try:
        result["ehlo"] = client.ehlo()[0]
        result["mail"] = client.mail(mail_from)[0]
        code, msg = client.rcpt(rcpt)
        result["rcpt"], result["rcpt_text"] = code, msg.decode("utf-8", "replace")
        if code == 250:
            code, msg = client.data(data)
            result["data"], result["data_text"] = code, msg.decode("utf-8", "replace")
    finally:
        client.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
