# ruff: noqa: RUF001  (Russian text is Cyrillic on purpose)
"""Demo data: teams, agents, inboxes, a few hundred customers and their histories.

Deterministic: everything comes from ``random.Random(seed)``, and every id is derived from a
stable name (``uuid5``) laid out as a UUIDv7 whose timestamp is the row's own time, so ids still
sort by creation time (cursor pagination relies on that). The whole load is one transaction;
when the demo admin already exists the load is skipped, so running it twice changes nothing.

Rows are written with SQLAlchemy Core in batches, straight into the tables: no outbox rows, no
timers, no realtime pushes — demo history is already delivered.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.auth.security import hash_password
from frontdesk.db import Database
from frontdesk.models import (
    CannedResponse,
    Consent,
    Conversation,
    ConversationTag,
    Customer,
    CustomerEvent,
    Identity,
    Inbox,
    Message,
    Queue,
    RoutingRule,
    Team,
    TeamMember,
    User,
)
from frontdesk.routing import service as routing_service

NAMESPACE = uuid.UUID("6f1c2a4e-9b7d-5e3a-8c1f-0d2e4b6a8c90")
DOMAIN = "example.com"  # staff; customers use example.org/.net/.ru (".test" fails email validation)
ADMIN_EMAIL = f"admin@{DOMAIN}"
ADMIN_PASSWORD = "demo-admin-2026"
SUPERVISOR_PASSWORD = "demo-supervisor"
AGENT_PASSWORD = "demo-agent"
DAYS = 60
BATCH = 500


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    password: str
    name: str
    team: str | None = None


TEAMS = {
    "Billing": "Invoices, payments, refunds and plan changes.",
    "Technical support": "Sign-in problems, the app, the website and integrations.",
    "Retention": "Customers who want to cancel or downgrade.",
    "Premium": "Dedicated desk for customers on the premium plan.",
}

# Queue settings per team: channels served, priority, service-level target (percent, seconds).
# Every row is written with the same keys (a bulk insert takes its columns from the first row and
# would silently drop a setting only a later row has), so the defaults come first.
QUEUE_DEFAULTS: dict[str, Any] = {"sticky_wait_seconds": 0, "auto_accept": False}
QUEUES: dict[str, dict[str, Any]] = {
    # Every queue takes every demo channel (blended); an empty list means "all channels".
    "Billing": {"channels": [], "priority": 50, "service_level_percent": 90, "service_level_seconds": 60},
    "Technical support": {"channels": [], "priority": 50, "service_level_percent": 80, "service_level_seconds": 60},
    "Retention": {"channels": [], "priority": 70, "service_level_percent": 80, "service_level_seconds": 60,
                  "sticky_wait_seconds": 300},
    "Premium": {"channels": [], "priority": 80, "service_level_percent": 90, "service_level_seconds": 30},
    # E-mail has a target of its own (95% answered within 4 hours); live channels count in seconds.
    # Mail is not rung like a chat: it lands in an available agent's inbox (auto-accept), so a
    # live chat is never kept waiting behind an e-mail offer.
    "E-mail": {"channels": ["email"], "priority": 30, "service_level_percent": 95, "service_level_seconds": 4 * 3600,
               "auto_accept": True},
    # No rule names it, so it takes whatever no rule matches, on every channel: a new web chat, an
    # SMS or an API message from a customer without a segment or a tag reaches an agent at once.
    "General": {"channels": [], "priority": 40, "service_level_percent": 80, "service_level_seconds": 60},
}  # fmt: skip

# Routing rules, tried in this order: (name, conditions, queue, priority override)
RULES: list[tuple[str, dict[str, Any], str, int | None]] = [
    ("VIP customers to the premium desk", {"segments": ["vip"]}, "Premium", 85),
    ("Customers at risk to retention", {"segments": ["at_risk"]}, "Retention", None),
    ("Debtors to billing", {"segments": ["debtor"]}, "Billing", None),
    ("E-mail to the e-mail desk", {"channels": ["email"]}, "E-mail", None),
    ("Billing questions", {"tags": ["billing", "refund"]}, "Billing", None),
    ("Technical questions", {"tags": ["login", "bug"]}, "Technical support", None),
]

# Canned responses for everyone: (shortcut, title, body)
CANNED = [
    ("hello", "Greeting", "Hello {{customer.first_name}}, this is {{agent.first_name}}. How can I help you today?"),
    ("eta", "Delivery estimate",
     "Hi {{customer.first_name}}, your order {{customer.attributes.order_number}} is on its way and should "
     "arrive within 2 working days."),
    ("refund", "Refund started",
     "I have started a refund for you; it reaches your account within 5 working days. — {{agent.name}}"),
    ("bye", "Closing", "Is there anything else I can help you with? Have a good day, {{customer.first_name}}!"),
    ("privet", "Приветствие",
     "Здравствуйте, {{customer.first_name}}! Меня зовут {{agent.first_name}}. Чем могу помочь?"),
]  # fmt: skip

# (name, email local part, team)
AGENTS = [
    ("Anna Petrova", "anna.petrova", "Billing"),
    ("James Carter", "james.carter", "Billing"),
    ("Olga Smirnova", "olga.smirnova", "Billing"),
    ("Dmitry Volkov", "dmitry.volkov", "Technical support"),
    ("Emily Watson", "emily.watson", "Technical support"),
    ("Sergey Ivanov", "sergey.ivanov", "Technical support"),
    ("Laura Bennett", "laura.bennett", "Retention"),
    ("Maria Kuznetsova", "maria.kuznetsova", "Retention"),
    ("Oliver Hughes", "oliver.hughes", "Premium"),
    ("Ekaterina Orlova", "ekaterina.orlova", "Premium"),
]

LOGINS: list[Login] = [
    Login("admin", ADMIN_EMAIL, ADMIN_PASSWORD, "Alex Admin"),
    Login("supervisor", f"supervisor@{DOMAIN}", SUPERVISOR_PASSWORD, "Sofia Morozova", "Premium"),
    *(Login("agent", f"{local}@{DOMAIN}", AGENT_PASSWORD, name, team) for name, local, team in AGENTS),
]

# (name, channel, config)
INBOXES = [
    ("Web chat", "webchat", {"greeting": "Hi! How can we help?", "site": "https://shop.example.com"}),
    ("Support email", "email", {"address": f"support@{DOMAIN}"}),
    ("Partner API", "api", {"description": "Orders platform and mobile app"}),
    ("SMS", "sms", {"number": "+447700900001"}),
    ("Phone", "voice", {"number": "+442079460000"}),
]


def public_token(inbox_name: str) -> str:
    """The public token of a demo inbox (the same in every demo database)."""
    return "demo_" + uuid.uuid5(NAMESPACE, f"inbox-token/{inbox_name}").hex[:24]


WEBCHAT_INBOX = next(name for name, channel, _config in INBOXES if channel == "webchat")

EN_FIRST_F = ["Emma", "Olivia", "Sophie", "Grace", "Chloe", "Lucy", "Hannah", "Amelia", "Jessica", "Mia", "Ella"]
EN_FIRST_M = ["Jack", "Harry", "George", "Noah", "Thomas", "William", "Daniel", "Samuel", "Ethan", "Lucas", "Ben"]
EN_LAST = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Clarke", "Turner",
]  # fmt: skip
RU_FIRST_F = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Дарья", "Ксения"]
RU_FIRST_M = ["Иван", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Николай", "Павел", "Артём", "Егор"]
RU_LAST_M = [
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков", "Фёдоров",
    "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев",
]  # fmt: skip
TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t",
         "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"],
        strict=True,
    )
)  # fmt: skip

EN_PLACES = [
    ("London", "Europe/London", "en-GB", "+44"),
    ("Manchester", "Europe/London", "en-GB", "+44"),
    ("Edinburgh", "Europe/London", "en-GB", "+44"),
    ("New York", "America/New_York", "en-US", "+1"),
    ("Chicago", "America/Chicago", "en-US", "+1"),
    ("San Francisco", "America/Los_Angeles", "en-US", "+1"),
]
RU_PLACES = [
    ("Москва", "Europe/Moscow", "ru-RU", "+7"),
    ("Санкт-Петербург", "Europe/Moscow", "ru-RU", "+7"),
    ("Казань", "Europe/Moscow", "ru-RU", "+7"),
    ("Екатеринбург", "Asia/Yekaterinburg", "ru-RU", "+7"),
    ("Новосибирск", "Asia/Novosibirsk", "ru-RU", "+7"),
]
US_AREAS = ["212", "312", "415", "646", "773", "628"]
PLANS = [("free", 30), ("basic", 35), ("plus", 23), ("premium", 12)]
TIERS = [("promoter", 35), ("passive", 30), ("detractor", 15), ("unknown", 20)]

# contact reason -> team
REASONS = {
    "billing": "Billing",
    "refund": "Billing",
    "delivery": "Technical support",
    "login": "Technical support",
    "bug": "Technical support",
    "cancel": "Retention",
    "upgrade": "Retention",
    "travel": "Technical support",
}

# reason -> language -> (subject, customer opening, agent reply, customer follow-up, agent closing, note)
TEXTS: dict[str, dict[str, tuple[str, str, str, str, str, str]]] = {
    "billing": {
        "en": ("Charged twice this month", "Hi, I was charged twice for my subscription this month. Can you check?",
               "Sorry about that! I can see two charges on {date}; the second one is a duplicate and I have "
               "reversed it. It will be back on your card in 3–5 working days.",
               "Great, thank you for sorting it out so quickly.", "You're welcome — have a lovely day!",
               "Duplicate charge caused by a retry at the payment provider; reversed."),
        "ru": ("Двойное списание", "Здравствуйте! С карты дважды списали оплату за подписку. Проверьте, пожалуйста.",
               "Извините за неудобство! Вижу два списания от {date}, второе — дубль, я его отменила. "
               "Деньги вернутся на карту в течение 3–5 рабочих дней.",
               "Спасибо, что так быстро разобрались!", "Рады помочь! Хорошего дня.",
               "Дубль списания из-за повтора у платёжного провайдера, отменён."),
    },
    "refund": {
        "en": ("Refund for order {order}", "Hello, the jacket from order {order} doesn't fit. How do I get a refund?",
               "No problem. I've emailed you a prepaid return label; the refund goes out as soon as the parcel "
               "reaches our warehouse.", "Label received, I'll drop it off tomorrow.",
               "Perfect, the refund is on its way once it arrives.", "Return label sent; refund on receipt."),
        "ru": ("Возврат по заказу {order}", "Добрый день! Куртка из заказа {order} не подошла. Как оформить возврат?",
               "Конечно! Отправила вам на почту бесплатную этикетку для возврата; деньги вернём, как только "
               "посылка придёт на склад.", "Этикетку получила, завтра отправлю.",
               "Отлично, ждём посылку.", "Этикетка возврата отправлена, возврат после получения."),
    },
    "delivery": {
        "en": ("Where is my order {order}?", "Hi, my order {order} was supposed to arrive yesterday. Any news?",
               "Let me check… The courier had a delay at the depot; the new delivery date is tomorrow before 6 pm.",
               "OK, thanks. Can they leave it with a neighbour?", "Done — I've added that note for the courier.",
               "Courier delay at the depot; delivery note added."),
        "ru": ("Где мой заказ {order}?", "Здравствуйте! Заказ {order} должны были привезти вчера, но его нет.",
               "Проверил: у курьерской службы задержка на складе, новая дата доставки — завтра до 18:00.",
               "Хорошо. А можно оставить у соседей?", "Готово, передал курьеру комментарий.",
               "Задержка курьера на складе, комментарий для доставки добавлен."),
    },
    "login": {
        "en": ("Can't sign in", "I can't log in to my account, it says my password is wrong but I just reset it.",
               "Thanks for letting us know. Your account was locked after several attempts; I've unlocked it, "
               "please try the reset link again.", "It works now!", "Glad to hear it. Take care!",
               "Account locked by rate limit; unlocked manually."),
        "ru": ("Не могу войти", "Не получается войти в личный кабинет: пишет, что пароль неверный, хотя я его сменил.",
               "Спасибо, что написали. Аккаунт был временно заблокирован после нескольких попыток — я его "
               "разблокировал, попробуйте ещё раз по ссылке для сброса.", "Теперь всё работает!",
               "Отлично! Обращайтесь.", "Аккаунт заблокирован ограничением попыток, разблокирован вручную."),
    },
    "bug": {
        "en": ("The app crashes at checkout", "The app closes every time I tap 'Pay' on the checkout screen.",
               "Sorry! We've had reports of this on version 4.2; an update is rolling out today. Meanwhile the "
               "website checkout works.", "Updated, checkout works again.", "Thanks for your patience!",
               "Known crash in 4.2 (payment sheet); fixed in 4.2.1."),
        "ru": ("Приложение вылетает при оплате", "Приложение закрывается, когда нажимаю «Оплатить».",
               "Извините! Это известная ошибка версии 4.2, обновление выходит сегодня. Пока можно оплатить "
               "заказ на сайте.", "Обновился, всё работает.", "Спасибо за терпение!",
               "Известный сбой 4.2 на экране оплаты, исправлен в 4.2.1."),
    },
    "cancel": {
        "en": ("Cancel my subscription", "Please cancel my subscription, it's too expensive for me right now.",
               "I'm sorry to hear that. Before you go: I can offer you three months at half price. Would that help?",
               "Oh, that works for me. Let's do that.", "Done! The discount starts with your next invoice.",
               "Saved with 3 months at 50%."),
        "ru": ("Отменить подписку", "Отмените, пожалуйста, подписку — сейчас для меня это дорого.",
               "Жаль это слышать. Могу предложить три месяца за полцены — вам подойдёт?",
               "Да, так можно. Давайте.", "Готово! Скидка начнёт действовать со следующего счёта.",
               "Удержан: 3 месяца со скидкой 50%."),
    },
    "upgrade": {
        "en": ("Upgrade to premium", "What do I get with premium, and can I switch mid-month?",
               "Premium adds free express delivery and a dedicated team. You can switch any time; we prorate the "
               "rest of the month.", "Sounds good, please switch me.", "Switched — welcome to premium!",
               "Upgraded to premium; prorated."),
        "ru": ("Переход на премиум", "Что даёт премиум и можно ли перейти в середине месяца?",
               "Премиум — это бесплатная экспресс-доставка и отдельная команда поддержки. Перейти можно в любой "
               "момент, остаток месяца пересчитаем.", "Отлично, переключите меня.",
               "Готово — добро пожаловать в премиум!", "Переход на премиум, перерасчёт сделан."),
    },
    "travel": {
        "en": ("Flight {flight} delayed", "My flight {flight} is delayed by 3 hours and I'll miss my connection.",
               "I've rebooked you on the next connection and sent the new boarding passes to your email.",
               "Got them, thank you!", "Have a good trip!", "Rebooked after delay; compensation eligible."),
        "ru": ("Рейс {flight} задерживается", "Рейс {flight} задерживают на 3 часа, я не успеваю на стыковку.",
               "Переоформил вас на следующую стыковку, новые посадочные отправил на почту.",
               "Получил, спасибо!", "Хорошего полёта!", "Переоформлен после задержки; положена компенсация."),
    },
}  # fmt: skip

EVENT_TYPES = [
    ("page.viewed", 30),
    ("order.placed", 18),
    ("order.shipped", 14),
    ("order.delivered", 12),
    ("payment.failed", 5),
    ("cart.abandoned", 8),
    ("subscription.renewed", 6),
    ("flight.delayed", 3),
    ("app.crashed", 4),
]
PAGES = ["/", "/pricing", "/help/returns", "/help/delivery", "/account", "/checkout", "/plans/premium"]


@dataclass
class DemoResult:
    created: bool
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.counts.items())


def demo_id(at: datetime, *parts: object) -> uuid.UUID:
    """A stable id for ``parts`` shaped like a UUIDv7 stamped at ``at`` (sorts with real ids)."""
    stable = uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)).int
    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | (0x7 << 76) | (stable & ((1 << 76) - 1) & ~(0b11 << 62)) | (0b10 << 62)
    return uuid.UUID(int=value)


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


# How soon agents answer, per channel: (share within the usual range, usual range, slow range) in s.
FIRST_RESPONSE = {
    "voice": (0.85, (5, 40), (40, 300)),
    "webchat": (0.85, (10, 60), (60, 600)),
    "email": (0.9, (300, 3 * 3600), (3 * 3600, 8 * 3600)),
}
OTHER_FIRST_RESPONSE = (0.75, (20, 60), (60, 1800))


def _first_response_seconds(rng: random.Random, channel: str) -> int:
    usual_share, usual, slow = FIRST_RESPONSE.get(channel, OTHER_FIRST_RESPONSE)
    return rng.randint(*(usual if rng.random() < usual_share else slow))


def _last_reply(script: list[tuple[str, str, datetime]]) -> int:
    """Index of the last agent reply in a conversation script (-1: none)."""
    return max((i for i, (direction, _, _) in enumerate(script) if direction == "out"), default=-1)


def _translit(text: str) -> str:
    return "".join(TRANSLIT.get(ch, ch) for ch in text.lower())


class _Builder:
    """Generates every row in memory (fast, deterministic), then :func:`load` writes them."""

    def __init__(self, seed: int, n_customers: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0)
        self.start = self.now - timedelta(days=DAYS)
        self.setup_at = self.start - timedelta(days=30)
        self.n_customers = n_customers
        self.rows: dict[Any, list[dict[str, Any]]] = {
            t: []
            for t in (User, Team, TeamMember, Queue, RoutingRule, CannedResponse, Inbox, Customer, Identity, Consent,
                      Conversation, ConversationTag, Message, CustomerEvent)
        }  # fmt: skip
        self.team_ids: dict[str, uuid.UUID] = {}
        self.queue_ids: dict[str, uuid.UUID] = {}
        self.inbox_ids: dict[str, uuid.UUID] = {}
        self.agents_by_team: dict[str, list[uuid.UUID]] = {}
        self._phones: set[str] = set()

    # -- staff and setup ------------------------------------------------------------------

    def staff(self) -> None:
        t = self.setup_at
        for name, description in TEAMS.items():
            tid = demo_id(t, "team", name)
            self.team_ids[name] = tid
            self.rows[Team].append(
                {"id": tid, "name": name, "description": description, "created_at": t, "updated_at": t}
            )
            qid = demo_id(t, "queue", name)
            self.queue_ids[name] = qid
            self.rows[Queue].append(
                {
                    "id": qid,
                    "name": name,
                    **QUEUE_DEFAULTS,
                    **QUEUES[name],
                    "team_ids": [str(tid)],
                    "created_at": t,
                    "updated_at": t,
                }
            )
        for name in sorted(QUEUES.keys() - TEAMS.keys()):  # queues any team's agents serve
            qid = demo_id(t, "queue", name)
            self.queue_ids[name] = qid
            self.rows[Queue].append(
                {
                    "id": qid,
                    "name": name,
                    **QUEUE_DEFAULTS,
                    **QUEUES[name],
                    "team_ids": [],
                    "created_at": t,
                    "updated_at": t,
                }
            )
        for position, (rule_name, conditions, queue, priority) in enumerate(RULES):
            self.rows[RoutingRule].append({
                "id": demo_id(t, "rule", rule_name), "name": rule_name, "position": position, "enabled": True,
                "conditions": conditions, "queue_id": self.queue_ids[queue], "priority": priority,
                "created_at": t, "updated_at": t,
            })  # fmt: skip
        for shortcut, title, body in CANNED:
            self.rows[CannedResponse].append({
                "id": demo_id(t, "canned", shortcut), "shortcut": shortcut, "title": title, "body": body,
                "scope": "global", "owner_id": None, "created_at": t, "updated_at": t,
            })  # fmt: skip
        hashes = {pw: hash_password(pw) for pw in {ADMIN_PASSWORD, SUPERVISOR_PASSWORD, AGENT_PASSWORD}}
        for login in LOGINS:
            uid = demo_id(t, "user", login.email)
            ru = login.name.split()[0] in {"Anna", "Olga", "Dmitry", "Sergey", "Maria", "Ekaterina", "Sofia"}
            self.rows[User].append({
                "id": uid, "email": login.email, "name": login.name, "role": login.role,
                "password_hash": hashes[login.password], "locale": "ru-RU" if ru else "en-GB",
                "time_zone": "Europe/Moscow" if ru else "Europe/London", "is_active": True,
                "last_login_at": self.now - timedelta(hours=self.rng.randint(1, 72)),
                "created_at": t, "updated_at": t,
            })  # fmt: skip
            if login.team:
                self.rows[TeamMember].append({"team_id": self.team_ids[login.team], "user_id": uid, "created_at": t})
                if login.role == "agent":
                    self.agents_by_team.setdefault(login.team, []).append(uid)
        for name, channel, config in INBOXES:
            iid = demo_id(t, "inbox", name)
            self.inbox_ids[channel] = iid
            self.rows[Inbox].append({
                "id": iid, "name": name, "channel": channel, "config": config, "is_active": True,
                "public_token": public_token(name),
                "created_at": t, "updated_at": t,
            })  # fmt: skip

    # -- customers ------------------------------------------------------------------------

    def _phone(self, prefix: str) -> str:
        while True:
            if prefix == "+44":
                number = f"+447700900{self.rng.randint(0, 999):03d}"
            elif prefix == "+1":
                number = f"+1{self.rng.choice(US_AREAS)}55501{self.rng.randint(0, 99):02d}"
            else:
                number = f"+79{self.rng.randint(10, 99)}{self.rng.randint(0, 9_999_999):07d}"
            if number not in self._phones:
                self._phones.add(number)
                return number

    def customers(self) -> None:
        rng = self.rng
        for n in range(self.n_customers):
            russian = rng.random() < 0.4
            female = rng.random() < 0.5
            if russian:
                first = rng.choice(RU_FIRST_F if female else RU_FIRST_M)
                last = rng.choice(RU_LAST_M)
                last = last + ("а" if female else "")
                city, tz, locale, prefix = rng.choice(RU_PLACES)
                domain = rng.choice(["example.ru", "example.org", "example.net"])
                local = f"{_translit(first)}.{_translit(last)}{n}"
            else:
                first = rng.choice(EN_FIRST_F if female else EN_FIRST_M)
                last = rng.choice(EN_LAST)
                city, tz, locale, prefix = rng.choice(EN_PLACES)
                domain = rng.choice(["example.org", "example.net"])
                local = f"{first.lower()}.{last.lower()}{n}"
            created = self.start - timedelta(days=rng.randint(0, 700), minutes=rng.randint(0, 1440))
            cid = demo_id(created, "customer", n)
            plan = _pick(rng, PLANS)
            orders = rng.randint(0, 4) + {"free": 0, "basic": 2, "plus": 5, "premium": 12}[plan] + rng.randint(0, 6)
            value = Decimal(orders * rng.randint(2500, 12000)) / 100 + Decimal(
                {"free": 0, "basic": 60, "plus": 180, "premium": 600}[plan]
            )
            customer = {
                "id": cid, "name": f"{first} {last}", "locale": locale, "time_zone": tz,
                "attributes": {"plan": plan, "city": city, "orders_count": orders,
                               "signup_source": rng.choice(["web", "app", "store", "referral"]),
                               **({"order_number": f"FD-{104200 + n}"} if orders else {}),
                               **({"vip": True} if plan == "premium" else {})},
                "satisfaction_tier": _pick(rng, TIERS), "lifetime_value": value.quantize(Decimal("0.01")),
                "merged_into_id": None, "created_at": created, "updated_at": created,
            }  # fmt: skip
            self.rows[Customer].append(customer)
            identities = [("email", f"{local}@{domain}")]
            if rng.random() < 0.75:
                identities.append(("phone", self._phone(prefix)))
            if rng.random() < 0.5:
                identities.append(("external_id", f"shop:{100000 + n}"))
            if rng.random() < 0.35:
                identities.append(("webchat_visitor", "v_" + uuid.uuid5(NAMESPACE, f"visitor/{n}").hex[:20]))
            if rng.random() < 0.15:
                identities.append(("messenger", f"telegram:@{local.replace('.', '_')[:28]}"))
            for kind, value_ in identities:
                self.rows[Identity].append({
                    "id": demo_id(created, "identity", n, kind), "customer_id": cid, "kind": kind, "value": value_,
                    # Shop logins and browsers are proven (HMAC, the visitor token); addresses mostly.
                    "verified": kind in ("external_id", "webchat_visitor")
                    or (kind in ("email", "phone") and rng.random() < 0.8),
                    "undeliverable": False,
                    "created_at": created,
                })  # fmt: skip
            for channel, category in (("email", "marketing"), ("sms", "marketing"), ("email", "service")):
                if category == "service" or rng.random() < 0.8:
                    status = (
                        "granted"
                        if category == "service"
                        else rng.choice(["granted", "granted", "denied", "withdrawn"])
                    )
                    at = created + timedelta(days=rng.randint(0, 30))
                    self.rows[Consent].append({
                        "id": demo_id(at, "consent", n, channel, category), "customer_id": cid,
                        "channel": channel, "category": category, "status": status,
                        "source": "sms STOP" if status == "withdrawn" and channel == "sms" else "signup form",
                        "recorded_at": min(at, self.now),
                    })  # fmt: skip
            self.history(n, customer, russian, [k for k, _ in identities], plan)

    # -- conversations and events ---------------------------------------------------------

    def history(self, n: int, customer: dict[str, Any], russian: bool, kinds: list[str], plan: str) -> None:
        rng = self.rng
        lang = "ru" if russian else "en"
        channels = ["email", "api"]
        if "phone" in kinds:
            channels += ["sms", "voice"]
        if "webchat_visitor" in kinds or rng.random() < 0.5:
            channels.append("webchat")
        for k in range(rng.choices([0, 1, 2, 3, 4], weights=[15, 35, 28, 15, 7])[0]):
            self.conversation(n, k, customer, lang, rng.choice(channels), plan)
        for e in range(rng.randint(2, 14)):
            self.event(n, e, customer)

    def conversation(self, n: int, k: int, customer: dict[str, Any], lang: str, channel: str, plan: str) -> None:
        rng = self.rng
        if rng.random() < 0.2:  # a busy last few days, so the desk has open work to show
            opened = self.now - timedelta(seconds=rng.randint(600, 3 * 86400))
        else:
            opened = self.start + timedelta(seconds=rng.randint(0, DAYS * 86400 - 3600))
        age = self.now - opened
        reason = rng.choice(list(REASONS))
        team = "Premium" if plan == "premium" and rng.random() < 0.7 else REASONS[reason]
        if age < timedelta(hours=6):
            status = rng.choice(["open", "open", "pending"])
        elif age < timedelta(days=3):
            status = rng.choice(["open", "pending", "snoozed", "resolved", "resolved"])
        else:  # none still open: a customer waiting for weeks is not a demo anyone wants to see
            status = "resolved" if rng.random() < 0.93 else rng.choice(["pending", "snoozed"])
        if channel == "voice" and status == "open":
            status = "pending"  # a call is over once it ends: what stays open is the follow-up
        assignee = rng.choice(self.agents_by_team[team]) if status != "open" or rng.random() < 0.6 else None
        order = f"#{rng.randint(100000, 999999)}"
        flight = f"FD{rng.randint(100, 999)}"
        subject, opening, reply, follow_up, closing, note = (
            t.format(order=order, flight=flight, date=(opened - timedelta(days=2)).strftime("%d.%m"))
            for t in TEXTS[reason][lang]
        )
        if channel == "voice":
            opening = ("Звонок: " if lang == "ru" else "Call: ") + opening
        cid = demo_id(opened, "conversation", n, k)
        first_response = opened + timedelta(seconds=_first_response_seconds(rng, channel))
        script: list[tuple[str, str, datetime]] = [("in", opening, opened)]
        if assignee is not None and first_response < self.now:
            script.append(("out", reply, first_response))
            t = first_response
            if rng.random() < 0.35:
                t += timedelta(minutes=rng.randint(1, 20))
                script.append(("note", note, t))
            if status in ("resolved", "snoozed") or rng.random() < 0.5:
                t += timedelta(minutes=rng.randint(2, 600))
                script.append(("in", follow_up, t))
                if status == "resolved":
                    t += timedelta(minutes=rng.randint(1, 120))
                    script.append(("out", closing, t))
        script = [s for s in script if s[2] <= self.now]
        last = script[-1][2]
        answered = any(d == "out" for d, _, _ in script)
        # The customer waits since their first message after our last reply (the desk sorts by it).
        unanswered = [at for d, _, at in script[_last_reply(script) + 1 :] if d == "in"]
        waiting_since = unanswered[0] if unanswered and status in ("open", "pending") else None
        resolved_at = last + timedelta(minutes=rng.randint(1, 30)) if status == "resolved" else None
        if resolved_at is not None and resolved_at > self.now:
            resolved_at = self.now
        self.rows[Conversation].append({
            "id": cid, "customer_id": customer["id"], "channel": channel, "inbox_id": self.inbox_ids[channel],
            "subject": subject if channel in ("email", "api") else None, "status": status,
            "priority": "high" if team == "Premium" else _pick(rng, [("low", 15), ("normal", 70), ("high", 12),
                                                                      ("urgent", 3)]),
            "queue_id": self.queue_ids["E-mail" if channel == "email" and team != "Premium" else team],
            "assignee_id": assignee, "team_id": self.team_ids[team],
            "snoozed_until": self.now + timedelta(hours=rng.randint(2, 72)) if status == "snoozed" else None,
            "last_message_at": last, "first_response_at": first_response if answered else None,
            "resolved_at": resolved_at,
            "first_response_seconds": int((first_response - opened).total_seconds()) if answered else None,
            "resolution_seconds": int((resolved_at - opened).total_seconds()) if resolved_at else None,
            "message_count": sum(1 for d, _, _ in script if d != "note"), "waiting_since": waiting_since,
            "created_at": opened, "updated_at": resolved_at or last,
        })  # fmt: skip
        tags = {reason} | ({rng.choice(list(REASONS))} if rng.random() < 0.2 else set())
        for tag in sorted(tags):
            self.rows[ConversationTag].append({"conversation_id": cid, "tag": tag, "created_at": opened})
        for i, (direction, text, at) in enumerate(script):
            inbound = direction == "in"
            self.rows[Message].append({
                "id": demo_id(at, "message", n, k, i), "conversation_id": cid, "customer_id": customer["id"],
                "direction": direction, "channel": channel,
                "author_type": "customer" if inbound else "agent", "author_id": None if inbound else assignee,
                "text": text, "html": None,
                "external_id": f"demo-{n}-{k}-{i}" if inbound else None,
                "delivery_status": "received" if inbound else ("delivered" if direction == "note" else
                                                               rng.choice(["delivered", "read", "read"])),
                "error": None, "meta": {"demo": True}, "created_at": at, "status_at": at,
            })  # fmt: skip

    def event(self, n: int, e: int, customer: dict[str, Any]) -> None:
        rng = self.rng
        kind = _pick(rng, EVENT_TYPES)
        at = self.start + timedelta(seconds=rng.randint(0, DAYS * 86400 - 60))
        props: dict[str, Any]
        source = "shop"
        if kind.startswith("order."):
            props = {
                "order_id": f"#{rng.randint(100000, 999999)}",
                "total": round(rng.uniform(9, 400), 2),
                "currency": "RUB" if customer["locale"] == "ru-RU" else "GBP",
                "items": rng.randint(1, 5),
            }
            if kind == "order.shipped":
                props["carrier"] = rng.choice(["DHL", "UPS", "Royal Mail", "СДЭК"])
        elif kind == "page.viewed":
            props, source = {"url": rng.choice(PAGES), "seconds": rng.randint(3, 400)}, "web"
        elif kind == "payment.failed":
            props = {
                "reason": rng.choice(["card_declined", "insufficient_funds", "expired_card"]),
                "amount": round(rng.uniform(5, 60), 2),
            }
            source = "billing"
        elif kind == "cart.abandoned":
            props = {"items": rng.randint(1, 4), "value": round(rng.uniform(15, 250), 2)}
        elif kind == "subscription.renewed":
            props, source = {"plan": customer["attributes"]["plan"]}, "billing"
        elif kind == "flight.delayed":
            props = {"flight": f"FD{rng.randint(100, 999)}", "delay_minutes": rng.choice([45, 90, 180, 240])}
            source = "operations"
        else:
            props, source = {"version": rng.choice(["4.1.3", "4.2.0"]), "screen": "checkout"}, "app"
        eid = demo_id(at, "event", n, e)
        self.rows[CustomerEvent].append({
            "id": eid, "customer_id": customer["id"], "type": kind, "properties": props, "source": source,
            "occurred_at": at, "received_at": at + timedelta(seconds=rng.randint(0, 5)),
            "idempotency_key": f"demo:{n}:{e}",
        })  # fmt: skip

    def build(self) -> dict[Any, list[dict[str, Any]]]:
        self.staff()
        self.customers()
        return self.rows


async def already_loaded(session: AsyncSession) -> bool:
    found = await session.scalar(select(func.count()).select_from(User).where(User.email == ADMIN_EMAIL))
    return bool(found)


def _batches(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


async def load(db: Database, *, seed: int = 2026, customers: int = 300, console: Console | None = None) -> DemoResult:
    """Load the demo data in one transaction; a no-op when it is already there."""
    async with db.transaction() as session:
        if await already_loaded(session):
            return DemoResult(created=False)
        rows = _Builder(seed, customers, clock.now()).build()
        total = sum(len(r) for r in rows.values())
        with Progress(
            TextColumn("[bold]demo data[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console or Console(stderr=True), transient=True,
            disable=console is None,
        ) as progress:  # fmt: skip
            task = progress.add_task("", total=total)
            for model, table_rows in rows.items():
                progress.update(task, description=model.__tablename__)
                for batch in _batches(table_rows, BATCH):
                    await session.execute(insert(model.__table__), batch)
                    progress.advance(task, len(batch))
        # Customers waiting for nobody in particular go to routing, like new conversations do: the
        # wallboard shows them waiting and agents who go available are offered them.
        for c in rows[Conversation]:
            if c["status"] == "open" and c["assignee_id"] is None:
                await routing_service.forward(session, "conversation", conversation_id=c["id"])
    return DemoResult(created=True, counts={m.__tablename__: len(r) for m, r in rows.items() if r})
