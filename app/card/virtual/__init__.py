"""The training card: a PIV applet, its card file, and its link to pcscd's virtual (vpcd) reader.

For development, test and training machines only; nothing here touches pyscard, Qt or HTTP.
"""

from app.card.virtual.applet import PivApplet
from app.card.virtual.cardfile import CardFile, exclusive_use
from app.card.virtual.issue import issue_card
from app.card.virtual.piv_objects import ATR
from app.card.virtual.vpcd import VpcdLink

__all__ = ["ATR", "CardFile", "PivApplet", "VpcdLink", "exclusive_use", "issue_card"]
